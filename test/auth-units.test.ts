/**
 * Fast unit tests of src/auth: the access checks, JWT and share link verification (a
 * real key set server for JWKS), the per-principal limits on a controlled clock, the
 * audit writer, and the settings. The real-socket tests are principals.test.ts and
 * principals-distributed.test.ts.
 */
import t from 'tap';
import type { Test } from 'tap';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { Authenticator } from '../src/auth/authenticator.js';
import { Auditor } from '../src/auth/audit.js';
import { InvalidCredential, JwtVerifier, KeySetUnavailable, principalOf } from '../src/auth/jwt.js';
import { LinkSigner, newLinkId } from '../src/auth/links.js';
import { PrincipalLimits } from '../src/auth/principal-limits.js';
import { ADMIN, canSee, checkAdmin, checkAttach, checkKill, checkList, checkOpen, checkShare, type Principal } from '../src/auth/principal.js';
import { loadConfig } from '../src/config/config.js';
import { ConfigError, SwitchboardError } from '../src/errors/errors.js';
import { MemoryLimiter } from '../src/limit/memory-limiter.js';
import { MemoryStore } from '../src/store/memory-store.js';
import type { AuditEvent, SessionEvent } from '../src/store/store.js';
import { newSessionId } from '../src/util/ids.js';
import { createLogger } from '../src/util/log.js';
import { sessionRecord } from './contract/store.js';
import { until } from './helpers/redis.js';

const SECRET = 'unit-test-jwt-secret-0123456789abcdef';
const key = new TextEncoder().encode(SECRET);
const nowS = (): number => Math.floor(Date.now() / 1000);

/** An HS256 JWT; `exp: null` leaves the claim out. */
function hs256(claims: Record<string, unknown>, exp: number | null = nowS() + 600, secret: Uint8Array = key): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(secret);
}

async function invalid(t: Test, promise: Promise<unknown>, pattern: RegExp, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(err instanceof InvalidCredential && pattern.test(err.message), what, { err: String(err) });
  }
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof SwitchboardError ? err.code : 'not a SwitchboardError';
  }
}

const alice: Principal = { name: 'alice', admin: false, credential: 'jwt' };
const bob: Principal = { name: 'bob', admin: false, credential: 'jwt' };
const root: Principal = { name: 'root', admin: true, credential: 'jwt' };
const carol: Principal = { name: 'carol', admin: false, credential: 'jwt' };

t.test('access checks: own sessions, not_found for others, links scoped to one session and role', async (t) => {
  const mine = { sid: newSessionId(), owner: 'alice' };
  const theirs = { sid: newSessionId(), owner: 'bob' };
  t.ok(canSee(alice, mine));
  t.notOk(canSee(alice, theirs));
  t.ok(canSee(root, theirs), 'an admin JWT sees everything');
  t.ok(canSee(ADMIN, theirs), 'the admin token too');
  t.equal(code(() => checkAttach(alice, theirs, 'viewer')), 'not_found', 'another user\'s session does not exist, even to view');
  t.equal(code(() => checkKill(alice, theirs)), 'not_found');
  t.equal(code(() => checkShare(alice, theirs)), 'not_found');
  t.equal(code(() => checkAttach(alice, mine, 'writer')), undefined);
  t.equal(code(() => checkKill(alice, mine)), undefined);
  t.equal(code(() => checkAdmin(alice)), 'forbidden');
  t.equal(code(() => checkAdmin(root)), undefined);

  const viewer: Principal = { name: 'link:x', admin: false, credential: 'link', link: { id: 'x', sid: mine.sid, role: 'viewer', expiresAt: Date.now() + 1000, by: 'alice' } };
  const writer: Principal = { ...viewer, link: { ...viewer.link!, role: 'writer' } };
  t.equal(code(() => checkAttach(viewer, mine, 'viewer')), undefined);
  t.equal(code(() => checkAttach(viewer, mine, 'writer')), 'forbidden', 'a viewer link cannot attach as writer');
  t.equal(code(() => checkAttach(writer, mine, 'writer')), undefined);
  t.equal(code(() => checkAttach(writer, mine, 'writer', writer.link!.expiresAt)), 'unauthorized', 'not once expired');
  t.equal(code(() => checkAttach(viewer, { sid: theirs.sid, owner: 'alice' }, 'viewer')), 'not_found', 'another session, even of the same owner');
  t.equal(code(() => checkKill(writer, mine)), 'forbidden', 'a link never kills');
  t.equal(code(() => checkOpen(writer)), 'forbidden');
  t.equal(code(() => checkList(writer)), 'forbidden');
  t.equal(code(() => checkShare(writer, mine)), 'forbidden');
  t.equal(code(() => checkOpen(alice)), undefined);
});

t.test('JWT claims: sub and role, reserved names refused', async (t) => {
  t.strictSame(principalOf({ sub: 'alice' }), { name: 'alice', admin: false, credential: 'jwt' }, 'role defaults to user');
  t.strictSame(principalOf({ sub: 'ops', role: 'admin' }), { name: 'ops', admin: true, credential: 'jwt' });
  t.throws(() => principalOf({ sub: 'alice', role: 'root' }), InvalidCredential);
  t.throws(() => principalOf({}), InvalidCredential, 'no sub');
  t.throws(() => principalOf({ sub: '' }), InvalidCredential);
  t.throws(() => principalOf({ sub: 'x'.repeat(257) }), InvalidCredential, 'too long');
  t.throws(() => principalOf({ sub: 'a\nb' }), InvalidCredential, 'control characters');
  t.throws(() => principalOf({ sub: 'link:abc' }), InvalidCredential, 'link names are reserved');
  t.throws(() => principalOf({ sub: 'admin' }), InvalidCredential, 'a user named admin would see the admin token\'s sessions');
  t.equal(principalOf({ sub: 'admin', role: 'admin' }).admin, true, 'an admin JWT may be called admin');
});

t.test('HS256 JWTs: valid, expired, wrong key, missing claims, issuer and audience', async (t) => {
  const v = new JwtVerifier({ secret: SECRET });
  const exp = nowS() + 600;
  t.strictSame(await v.verify(await hs256({ sub: 'alice' }, exp)), { ...alice, expiresAt: exp * 1000 }, 'the principal, with its exp (sockets close then)');
  t.match(await v.verify(await hs256({ sub: 'root', role: 'admin' })), root);
  await invalid(t, v.verify(await hs256({ sub: 'alice' }, nowS() - 60)), /expired/, 'expired');
  await invalid(t, v.verify(await hs256({ sub: 'alice' }, null)), /exp/, 'exp is required');
  await invalid(t, v.verify(await hs256({ role: 'user' })), /sub/, 'sub is required');
  await invalid(t, v.verify(await hs256({ sub: 'alice' }, nowS() + 600, new TextEncoder().encode('another-secret-of-enough-length-0123456789'))), /signature/, 'another key');
  const token = await hs256({ sub: 'alice' });
  const [h, p, s] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ sub: 'root', role: 'admin', exp: nowS() + 600 })).toString('base64url');
  await invalid(t, v.verify(`${h}.${forged}.${s}`), /signature/, 'claims changed after signing');
  await invalid(t, v.verify(`${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${p}.`), /JWKS|none|alg|unsigned/i, 'alg none');
  await invalid(t, v.verify('not-a-jwt'), /not a JWT/, 'garbage');
  await invalid(t, new JwtVerifier({}).verify(token), /SWITCHBOARD_JWT_SECRET/, 'HS256 without a secret');

  const strict = new JwtVerifier({ secret: SECRET, issuer: 'https://idp.example', audience: 'switchboard' });
  t.equal((await strict.verify(await hs256({ sub: 'alice', iss: 'https://idp.example', aud: 'switchboard' }))).name, 'alice');
  await invalid(t, strict.verify(await hs256({ sub: 'alice', iss: 'https://evil.example', aud: 'switchboard' })), /iss/, 'another issuer');
  await invalid(t, strict.verify(await hs256({ sub: 'alice', iss: 'https://idp.example', aud: 'other' })), /aud/, 'another audience');
  await invalid(t, strict.verify(await hs256({ sub: 'alice' })), /iss/, 'issuer required when configured');
});

t.test('JWKS: fetched, cached, rotated; never an HMAC key; unreachable is not the client\'s fault', async (t) => {
  const keys: JWK[] = [];
  let fetches = 0;
  const server: HttpServer = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;

  const one = await generateKeyPair('ES256', { extractable: true });
  keys.push({ ...(await exportJWK(one.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' });
  const sign = (k: CryptoKey, kid: string, claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime(nowS() + 600).sign(k);

  const v = new JwtVerifier({ jwksUrl: url, jwksCooldownMs: 0 });
  t.equal((await v.verify(await sign(one.privateKey, 'k1', { sub: 'alice' }))).name, 'alice');
  t.equal((await v.verify(await sign(one.privateKey, 'k1', { sub: 'bob' }))).name, 'bob');
  t.equal(fetches, 1, 'the key set is fetched once and cached');

  // Rotation: the issuer adds k2 and drops k1; a token naming k2 makes the verifier refetch.
  const two = await generateKeyPair('ES256', { extractable: true });
  keys.splice(0, keys.length, { ...(await exportJWK(two.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' });
  t.equal((await v.verify(await sign(two.privateKey, 'k2', { sub: 'carol', role: 'admin' }))).admin, true, 'a rotated-in key verifies');
  t.equal(fetches, 2, 'after one refetch');
  await invalid(t, v.verify(await sign(one.privateKey, 'k1', { sub: 'alice' })), /key set does not hold/, 'a rotated-out key does not');

  // An HS256 token whose "secret" is the public key's JSON must not verify against the key set.
  const confused = await new SignJWT({ sub: 'root', role: 'admin' }).setProtectedHeader({ alg: 'HS256', kid: 'k2' })
    .setExpirationTime(nowS() + 600).sign(new TextEncoder().encode(JSON.stringify(keys[0])));
  await invalid(t, v.verify(confused), /SWITCHBOARD_JWT_SECRET/, 'algorithm confusion refused');

  const down = new JwtVerifier({ jwksUrl: 'http://127.0.0.1:1/jwks.json' });
  await t.rejects(down.verify(await sign(two.privateKey, 'k2', { sub: 'alice' })), KeySetUnavailable, 'an unreachable key set');
});

t.test('share links: signed per cluster secret, never a user JWT, expiry, revocation through the store', async (t) => {
  const store = new MemoryStore();
  const auth = new Authenticator({ token: 'static-admin-token-0123', jwt: { secret: SECRET } }, store);
  const sid = newSessionId();
  const scope = { id: newLinkId(), sid, role: 'viewer' as const, by: 'alice', expiresAt: (nowS() + 600) * 1000 };
  await store.createLink({ id: scope.id, sid, role: 'viewer', createdBy: 'alice', createdAt: Date.now(), expiresAt: scope.expiresAt, revokedAt: null });
  const token = await auth.links.mint(scope);

  const ok = await auth.authenticate(token);
  t.ok(ok.ok);
  if (ok.ok) {
    t.equal(ok.principal.name, `link:${scope.id}`);
    t.equal(ok.principal.admin, false);
    t.strictSame(ok.principal.link, scope);
  }
  t.strictSame(await auth.authenticate('static-admin-token-0123'), { ok: true, principal: ADMIN });
  t.strictSame(await auth.authenticate('static-admin-token-0124'), { ok: false, reason: 'not the admin token, and not a JWT' });

  await invalid(t, new JwtVerifier({ secret: SECRET }).verify(token), /signature|sub/, 'a link token is not a user JWT under the same secret');
  const userToken = await hs256({ sub: 'alice', sid, role: 'writer', jti: scope.id });
  await invalid(t, auth.links.verify(userToken), /does not verify/, 'a user JWT is not a link');
  const other = new Authenticator({ token: 'static-admin-token-0123', jwt: {} }, store);
  t.match(await other.authenticate(token), { ok: false, reason: /does not verify/ }, 'another cluster secret: another link key');

  const expiredScope = { ...scope, id: newLinkId(), expiresAt: (nowS() - 60) * 1000 };
  await store.createLink({ id: expiredScope.id, sid, role: 'viewer', createdBy: 'alice', createdAt: Date.now(), expiresAt: expiredScope.expiresAt, revokedAt: null });
  t.strictSame(await auth.authenticate(await auth.links.mint(expiredScope)), { ok: false, reason: 'share link expired' });

  const unknown = await auth.links.mint({ ...scope, id: newLinkId() });
  t.strictSame(await auth.authenticate(unknown), { ok: false, reason: 'unknown share link' }, 'a link the store never saw');

  await store.revokeLink(sid, scope.id, Date.now());
  t.strictSame(await auth.authenticate(token), { ok: false, reason: 'share link revoked' });
});

t.test('per-principal limits: sessions, opens, input chunks on a shared bucket; admins exempt', async (t) => {
  let now = 1_000_000;
  const clock = (): number => now;
  const limiter = new MemoryLimiter(clock);
  const store = new MemoryStore();
  const limits = new PrincipalLimits(limiter, store, { maxSessions: 2, openRate: 3, inputRate: 1600 }, clock);
  const refusal = async (p: Promise<unknown>): Promise<string | undefined> => p.then(async (a) => {
    // An admitted open gives its place back once placed (the edge does so when the host answers).
    if (a && typeof a === 'object' && 'release' in a) await (a as { release(): Promise<void> }).release();
    return undefined;
  }, (e: unknown) => (e instanceof SwitchboardError ? e.code : String(e)));

  await store.createSession(sessionRecord({ owner: 'alice', status: 'running' }));
  await store.createSession(sessionRecord({ owner: 'alice', status: 'exited' }));
  t.equal(await refusal(limits.admitOpen(alice, newSessionId())), undefined, 'one running (exited ones do not count)');
  await store.createSession(sessionRecord({ owner: 'alice', status: 'running' }));
  t.equal(await refusal(limits.admitOpen(alice, newSessionId())), 'rate_limited', 'two running: the most');
  t.equal(limits.refused.sessions, 1);
  t.equal(await refusal(limits.admitOpen(root, newSessionId())), undefined, 'an admin is exempt');
  const held = await limits.admitOpen(carol, newSessionId());
  const second = await limits.admitOpen(carol, newSessionId());
  t.pass('a second place while the first is held');
  const third = limits.admitOpen(carol, newSessionId());
  t.equal(await refusal(third), 'rate_limited', 'a held place counts: the cap holds before any session exists');
  await held.release();
  t.equal(await refusal(limits.admitOpen(carol, newSessionId())), undefined, 'released: room again');
  await second.release();

  for (let i = 0; i < 3; i++) t.equal(await refusal(limits.admitOpen(bob, newSessionId())), undefined, `open ${i + 1} of 3 a minute`);
  t.equal(await refusal(limits.admitOpen(bob, newSessionId())), 'rate_limited', 'the fourth in a minute');
  now += 20_000;
  t.equal(await refusal(limits.admitOpen(bob, newSessionId())), undefined, 'one more 20 s later');

  // 1600 B/s: chunks of 100 B. The first frame takes a chunk; the next ones spend it locally.
  const first = limits.admitInput(bob, 10);
  t.ok(first instanceof Promise, 'an empty balance asks the shared limiter');
  await first;
  let local = 0;
  for (let i = 0; i < 9; i++) if (limits.admitInput(bob, 10) === undefined) local++;
  t.equal(local, 9, 'the rest of the chunk is spent without a round trip');
  t.equal(limits.admitInput(root, 1 << 20), undefined, 'admins are exempt');
  // Spend the bucket: 1500 B left in it.
  let admitted = 100;
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    try {
      await (limits.admitInput(bob, 100) ?? Promise.resolve());
      admitted += 100;
    } catch (err) {
      t.equal((err as SwitchboardError).code, 'rate_limited');
      refused++;
    }
  }
  t.equal(admitted, 1600, 'exactly the bucket, no more');
  t.equal(refused, 25);
  t.equal(limits.refused.input, 25);
  // A second node (another PrincipalLimits on the same limiter) gets nothing more either.
  const otherNode = new PrincipalLimits(limiter, store, { maxSessions: 2, openRate: 3, inputRate: 1600 }, clock);
  t.equal(await refusal(otherNode.admitInput(bob, 50) ?? Promise.resolve()), 'rate_limited', 'the bucket is shared');
  now += 500;
  t.equal(await refusal(otherNode.admitInput(bob, 50) ?? Promise.resolve()), undefined, 'refilled half a second later');
  t.equal(await refusal(limits.admitInput(bob, 1700) ?? Promise.resolve()), 'rate_limited', 'a frame larger than the bucket never fits');
});

t.test('audit writer: batches while a write is in flight, retries after a store failure', async (t) => {
  const store = new MemoryStore();
  const writes: number[] = [];
  let failing = true;
  const flaky = Object.create(store) as MemoryStore;
  flaky.appendEvents = async (events: readonly SessionEvent[]) => {
    writes.push(events.length);
    if (failing) throw new Error('store down');
    return store.appendEvents(events);
  };
  flaky.appendAudit = async (events: readonly AuditEvent[]) => store.appendAudit(events);
  const lines: string[] = [];
  const auditor = new Auditor(flaky, createLogger('info', 'test', (l) => lines.push(l)), { retryMs: 10, maxQueued: 5 });
  t.teardown(() => auditor.close());
  const sid = newSessionId();
  for (let i = 0; i < 4; i++) auditor.session('attach', sid, 1, alice, '10.0.0.1', { role: 'viewer', i });
  await auditor.flush();
  t.strictSame(writes, [1], 'the first event went alone and failed');
  t.equal((await store.listEvents(sid)).length, 0);
  failing = false;
  for (let i = 4; i < 7; i++) auditor.session('attach', sid, 1, alice, '10.0.0.1', { role: 'viewer', i });
  t.equal(auditor.dropped, 2, 'beyond maxQueued the oldest are dropped');
  await until(async () => (await store.listEvents(sid)).length === 5, 'the retried write');
  const kept = await store.listEvents(sid);
  t.strictSame(kept.map((e) => e.detail.i), [2, 3, 4, 5, 6], 'in order, after the retry, in one write');
  t.equal(writes.at(-1), 5);
  t.equal(kept[0]!.type, 'audit.attach');
  t.match(kept[0]!.detail, { principal: 'alice', credential: 'jwt', addr: '10.0.0.1', role: 'viewer' });
  t.equal(lines.filter((l) => JSON.parse(l).msg === 'audit').length, 7, 'every event logged at once, stored or not');

  auditor.login(true, 'upgrade', '10.0.0.2', alice, { path: '/v1/ws' });
  auditor.login(false, 'page', '10.0.0.3', undefined, { path: '/', reason: 'JWT expired' });
  await auditor.flush();
  const logins = await store.listAudit();
  t.match(logins, [{ type: 'login', principal: 'alice', addr: '10.0.0.2' }, { type: 'login_failed', principal: null, addr: '10.0.0.3', detail: { reason: 'JWT expired' } }]);
});

t.test('settings: a short JWT secret and a JWKS URL that is not http(s) are refused at start', async (t) => {
  t.throws(() => loadConfig(['--jwt-secret', 'x'.repeat(31)], {}), { name: 'ConfigError', message: /SWITCHBOARD_JWT_SECRET.*32 bytes/ });
  t.equal(loadConfig([], { SWITCHBOARD_JWT_SECRET: 'x'.repeat(32) }).jwtSecret, 'x'.repeat(32));
  t.throws(() => loadConfig(['--jwks-url', 'file:///etc/keys'], {}), ConfigError);
  t.equal(loadConfig(['--jwks-url', 'https://idp.example/.well-known/jwks.json'], {}).jwksUrl, 'https://idp.example/.well-known/jwks.json');
  const c = loadConfig([], {});
  t.equal(c.maxSessionsPerPrincipal, 100);
  t.equal(c.openRate, 60);
  t.equal(c.inputRate, 1024 * 1024);
  t.equal(loadConfig(['--input-rate', '4KiB'], {}).inputRate, 4096);
  t.throws(() => loadConfig(['--input-rate', '10'], {}), ConfigError, 'input rate at least 1 KiB');
});
