/**
 * Real principals on a real node (memory seams), over real sockets: user JWTs, scoping
 * (another user's session is not_found), admin-only routes, share links, the audit
 * trail and the per-principal limits. Across nodes: principals-distributed.test.ts.
 */
import t from 'tap';
import { generateKeyPair, SignJWT } from 'jose';
import { LinkSigner, newLinkId } from '../src/auth/links.js';
import type { Store } from '../src/store/store.js';
import { newSessionId } from '../src/util/ids.js';
import { rawRequest, upgradeStatus } from './helpers/http.js';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { memorySeams } from '../src/node/wiring.js';
import { until } from './helpers/redis.js';
import { refusal, TestClient, type Frame } from './helpers/ws.js';

const SECRET = 'principals-test-jwt-secret-0123456789';
const nowS = (): number => Math.floor(Date.now() / 1000);

function jwt(sub: string, options: { role?: string; exp?: number } = {}): Promise<string> {
  return new SignJWT({ sub, ...(options.role ? { role: options.role } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(options.exp ?? nowS() + 600)
    .sign(new TextEncoder().encode(SECRET));
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function api(node: TestNode, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await rawRequest(node.port, {
    method, path,
    headers: { ...bearer(token), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: res.text ? res.json() : undefined };
}

let node: TestNode;
let store: Store;
let alice: string;
let bob: string;
let ops: string;
t.before(async () => {
  node = await startNode(['--jwt-secret', SECRET, '--link-max-ttl-seconds', '86400']);
  store = node.node.seams.store;
  [alice, bob, ops] = await Promise.all([jwt('alice'), jwt('bob'), jwt('ops', { role: 'admin' })]);
});
t.teardown(() => node.stop());

t.test('a JWT is accepted wherever the token is: header, subprotocol, cookie, web login', async (t) => {
  const viaHeader = await TestClient.connect(node.url, { token: alice });
  t.equal((await viaHeader.request({ t: 'ping' })).t, 'pong');
  viaHeader.close();
  const viaProtocol = await TestClient.connect(node.url, { token: null, protocols: ['switchboard.v1', `bearer.${alice}`] });
  t.equal(viaProtocol.ws.protocol, 'switchboard.v1');
  viaProtocol.close();
  const viaCookie = await TestClient.connect(node.url, { token: null, headers: { cookie: `sb_token=${alice}` } });
  t.equal((await viaCookie.request({ t: 'ping' })).t, 'pong');
  viaCookie.close();
  const login = await rawRequest(node.port, { path: `/?token=${alice}&sid=abc` });
  t.equal(login.status, 302);
  t.equal(login.headers.location, '/?sid=abc');
  t.match(String(login.headers['set-cookie']), /sb_token=.*HttpOnly; SameSite=Strict/);
  t.equal((await api(node, 'GET', '/v1/sessions', alice)).status, 200, 'and on the API (Bearer)');
});

t.test('expired, forged and unknown tokens: 401 everywhere, counted as failed logins', async (t) => {
  const guarded = await startNode(['--jwt-secret', SECRET, '--login-failure-rate', '4']);
  t.teardown(() => guarded.stop());
  const expired = await jwt('alice', { exp: nowS() - 120 });
  const upgrade = await upgradeStatus(guarded.port, { headers: bearer(expired) });
  t.equal(upgrade.status, 401, 'expired JWT: upgrade refused');
  const viaApi = await rawRequest(guarded.port, { path: '/v1/sessions', headers: bearer(expired) });
  t.equal(viaApi.status, 401, 'expired JWT: API refused');
  t.match(viaApi.json().message, /expired/, 'and says why');
  t.equal((await rawRequest(guarded.port, { path: `/?token=${expired}` })).status, 401, 'expired JWT: web login refused');
  const forged = `${alice.slice(0, -4)}AAAA`;
  t.equal((await upgradeStatus(guarded.port, { headers: bearer(forged) })).status, 401, 'a bad signature');
  const limited = await upgradeStatus(guarded.port, { headers: bearer(alice) });
  t.equal(limited.status, 429, 'four failures in a minute: even a good JWT from that address waits');
  t.ok(Number(limited.retryAfter) >= 1);
  const elsewhere = await upgradeStatus(guarded.port, { headers: bearer(alice), localAddress: '127.0.0.2' });
  t.equal(elsewhere.status, 101, 'another address is not affected');
  t.match(await rawRequest(guarded.port, { path: '/metrics', headers: bearer(TEST_TOKEN), localAddress: '127.0.0.3' }).then((r) => r.text), /switchboard_login_failures_total\{[^}]*\} 4/);
});

t.test('a key set that cannot be fetched: 503, and not a failed login', async (t) => {
  const jwks = await startNode(['--jwks-url', 'http://127.0.0.1:1/jwks.json', '--login-failure-rate', '1']);
  t.teardown(() => jwks.stop());
  const { privateKey } = await generateKeyPair('ES256');
  const token = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime(nowS() + 600).sign(privateKey);
  for (let i = 0; i < 3; i++) t.equal((await upgradeStatus(jwks.port, { headers: bearer(token) })).status, 503, `attempt ${i + 1}: unavailable`);
  const viaApi = await rawRequest(jwks.port, { path: '/v1/sessions', headers: bearer(token) });
  t.equal(viaApi.status, 503);
  t.match(viaApi.json().message, /SWITCHBOARD_JWKS_URL/);
  t.equal((await upgradeStatus(jwks.port, { headers: bearer(TEST_TOKEN) })).status, 101, 'never counted: the admin token still gets in from that address');
  t.equal((await upgradeStatus(jwks.port, { headers: bearer(await jwt('alice')) })).status, 401, 'an HS256 JWT without a secret is simply wrong');
});

t.test('users see, attach to, type into and kill only their own sessions; others get not_found', async (t) => {
  const a = await TestClient.connect(node.url, { token: alice });
  const b = await TestClient.connect(node.url, { token: bob });
  const { sid } = await a.request({ t: 'open', kind: 'echo' });
  const { sid: bobs } = await b.request({ t: 'open', kind: 'echo' });

  t.equal(await refusal(b, { t: 'attach', sid, role: 'viewer' }), 'not_found', 'attach to another user\'s session');
  t.equal(await refusal(b, { t: 'attach', sid: newSessionId() }), 'not_found', 'the same answer as a sid that does not exist');
  t.equal(await refusal(b, { t: 'kill', sid }), 'not_found', 'kill another user\'s session');
  const typed = b.next((f) => f.t === 'error' && f.sid === sid);
  b.send({ t: 'in', sid, data: Buffer.from('x') });
  t.equal((await typed).code, 'not_found', 'type into it');
  t.equal((await api(node, 'DELETE', `/v1/sessions/${sid}`, bob)).status, 404, 'DELETE another user\'s session');
  t.equal((await api(node, 'POST', `/v1/sessions/${sid}/links`, bob, { role: 'viewer' })).status, 404, 'share another user\'s session');

  const bobList = (await api(node, 'GET', '/v1/sessions', bob)).json.sessions as Array<{ sid: string; owner: string }>;
  t.ok(bobList.some((s) => s.sid === bobs), 'bob lists his session');
  t.notOk(bobList.some((s) => s.sid === sid), 'and not alice\'s');
  t.ok(bobList.every((s) => s.owner === 'bob'));
  const all = (await api(node, 'GET', '/v1/sessions', TEST_TOKEN)).json.sessions as Array<{ sid: string; owner: string }>;
  t.equal(all.find((s) => s.sid === sid)?.owner, 'alice', 'the owner is the JWT sub');
  t.equal(all.find((s) => s.sid === bobs)?.owner, 'bob');
  t.equal((await store.getSession(sid))?.owner, 'alice', 'and so it is stored');

  a.send({ t: 'in', sid, data: Buffer.from('mine') });
  await a.waitForOutput(sid, 'mine');
  t.pass('the owner types');

  const admin = await TestClient.connect(node.url, { token: ops });
  t.equal((await admin.request({ t: 'attach', sid, from: 0, role: 'viewer' })).t, 'attached', 'an admin JWT attaches to anyone\'s session');
  t.ok((await api(node, 'GET', '/v1/sessions', ops)).json.sessions.some((s: { sid: string }) => s.sid === bobs), 'and lists everyone\'s');
  t.equal((await admin.request({ t: 'kill', sid: bobs })).t, 'killed', 'and kills them');
  t.equal((await a.request({ t: 'kill', sid })).t, 'killed', 'the owner kills its own');
  for (const c of [a, b, admin]) c.close();
});

t.test('users are refused the admin routes with 403', async (t) => {
  t.equal((await api(node, 'GET', '/v1/nodes', alice)).status, 403);
  t.equal((await api(node, 'POST', `/v1/nodes/${node.config.nodeId}/drain`, alice)).status, 403);
  t.equal((await rawRequest(node.port, { path: '/metrics', headers: bearer(alice) })).status, 403);
  t.equal((await api(node, 'GET', '/v1/nodes', ops)).status, 200, 'an admin JWT is let in');
  t.equal((await rawRequest(node.port, { path: '/metrics', headers: bearer(ops) })).status, 200);
  t.equal(node.node.state, 'serving', 'nothing drained');
});

t.test('share links: one session, at most their role, revocable', async (t) => {
  const owner = await TestClient.connect(node.url, { token: alice });
  const { sid } = await owner.request({ t: 'open', kind: 'echo' });
  const { sid: other } = await owner.request({ t: 'open', kind: 'echo' });

  t.equal((await api(node, 'POST', `/v1/sessions/${sid}/links`, alice, { role: 'owner' })).status, 400, 'an unknown role');
  t.equal((await api(node, 'POST', `/v1/sessions/${sid}/links`, alice, { ttlSeconds: 86_401 })).status, 400, 'past SWITCHBOARD_LINK_MAX_TTL_SECONDS');
  t.equal((await api(node, 'POST', `/v1/sessions/${sid}/links`, alice, { ttlSeconds: 1.5 })).status, 400, 'not whole seconds');
  const minted = await api(node, 'POST', `/v1/sessions/${sid}/links`, alice, { role: 'viewer', ttlSeconds: 600 });
  t.equal(minted.status, 201);
  const viewerLink = minted.json as { id: string; url: string; token: string; role: string; expiresAt: string };
  t.equal(viewerLink.role, 'viewer');
  t.equal(viewerLink.url, `http://127.0.0.1:${node.port}/?link=${viewerLink.token}`);
  const expiresIn = Date.parse(viewerLink.expiresAt) - Date.now();
  t.ok(expiresIn > 590_000 && expiresIn <= 600_000, 'expires when asked');
  const writerLink = (await api(node, 'POST', `/v1/sessions/${sid}/links`, ops, { role: 'writer' })).json as { id: string; token: string };
  t.ok(writerLink.token, 'an admin may share anyone\'s session');

  const viewer = await TestClient.connect(node.url, { token: null, protocols: ['switchboard.v1', `bearer.${viewerLink.token}`] });
  t.equal(await refusal(viewer, { t: 'attach', sid, role: 'writer' }), 'forbidden', 'a viewer link cannot attach as writer');
  t.equal(await refusal(viewer, { t: 'attach', sid: other, role: 'viewer' }), 'not_found', 'nor to another session of the same owner');
  t.equal(await refusal(viewer, { t: 'open', kind: 'echo' }), 'forbidden', 'nor open one');
  t.equal((await viewer.request({ t: 'attach', sid, from: 0, role: 'viewer' })).t, 'attached');
  owner.send({ t: 'in', sid, data: Buffer.from('shown-to-viewer') });
  await viewer.waitForOutput(sid, 'shown-to-viewer');
  t.pass('the viewer sees the session');
  const typed = viewer.next((f) => f.t === 'error' && f.sid === sid);
  viewer.send({ t: 'in', sid, data: Buffer.from('typed-by-viewer') });
  t.equal((await typed).code, 'forbidden', 'a viewer link cannot type');
  t.equal(await refusal(viewer, { t: 'kill', sid }), 'forbidden', 'nor kill');
  t.equal((await api(node, 'GET', '/v1/sessions', viewerLink.token)).status, 403, 'nor list');
  t.equal((await api(node, 'POST', '/v1/sessions', viewerLink.token, { kind: 'echo' })).status, 403, 'nor open over HTTP');
  t.equal((await api(node, 'POST', `/v1/sessions/${sid}/links`, viewerLink.token, { role: 'writer' })).status, 403, 'nor mint a better link');

  const writer = await TestClient.connect(node.url, { token: writerLink.token });
  await writer.request({ t: 'attach', sid, from: 0 });
  writer.send({ t: 'in', sid, data: Buffer.from('typed-by-writer-link') });
  await owner.waitForOutput(sid, 'typed-by-writer-link');
  t.notOk(owner.text(sid).includes('typed-by-viewer'), 'the viewer\'s input never reached the session');

  // The page: /?link= sets the cookie and goes on to the session with the link's role.
  const page = await rawRequest(node.port, { path: `/?link=${viewerLink.token}` });
  t.equal(page.status, 302);
  t.equal(page.headers.location, `/?sid=${sid}&role=viewer`);
  const cookie = String(page.headers['set-cookie']);
  t.match(cookie, new RegExp(`^sb_token=${viewerLink.token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=\\d+`));
  const browser = await TestClient.connect(node.url, { token: null, headers: { cookie: cookie.split(';')[0]! } });
  t.equal((await browser.request({ t: 'attach', sid, role: 'viewer' })).t, 'attached', 'the cookie attaches as the link');

  const listed = await api(node, 'GET', `/v1/sessions/${sid}/links`, alice);
  t.strictSame(listed.json.links.map((l: { id: string; role: string; active: boolean; createdBy: string }) => [l.id, l.role, l.active, l.createdBy]),
    [[viewerLink.id, 'viewer', true, 'alice'], [writerLink.id, 'writer', true, 'ops']]);
  t.notOk(JSON.stringify(listed.json).includes(viewerLink.token), 'tokens are never listed');
  t.equal((await api(node, 'GET', `/v1/sessions/${sid}/links`, bob)).status, 404, 'another user does not see them');

  // Revocation: every socket opened with it closes; the link is refused from then on.
  const revoked = await api(node, 'DELETE', `/v1/sessions/${sid}/links/${viewerLink.id}`, alice);
  t.strictSame(revoked.json, { id: viewerLink.id, revoked: true });
  t.equal((await viewer.closed).code, 1008, 'the viewer\'s socket closes');
  t.equal((await browser.closed).code, 1008, 'and the page\'s');
  t.equal((await upgradeStatus(node.port, { headers: bearer(viewerLink.token) })).status, 401, 'a revoked link is refused');
  t.equal((await rawRequest(node.port, { path: `/?link=${viewerLink.token}` })).status, 401, 'on the page too');
  t.equal((await api(node, 'DELETE', `/v1/sessions/${other}/links/${writerLink.id}`, alice)).status, 404, 'a link is revoked through its own session only');
  t.equal((await api(node, 'DELETE', `/v1/sessions/${sid}/links/${newLinkId()}`, alice)).status, 404, 'an unknown link');
  const after = (await api(node, 'GET', `/v1/sessions/${sid}/links`, alice)).json.links as Array<{ id: string; active: boolean; revokedAt: string | null }>;
  t.match(after, [{ id: viewerLink.id, active: false, revokedAt: String }, { id: writerLink.id, active: true, revokedAt: null }]);
  t.equal((await writer.request({ t: 'ping' })).t, 'pong', 'the other link\'s socket stays');

  // An expired link (signed like the node signs them, its row in the store): refused.
  const expired = { id: newLinkId(), sid, role: 'writer' as const, by: 'alice', expiresAt: (nowS() - 60) * 1000 };
  await store.createLink({ id: expired.id, sid, role: 'writer', createdBy: 'alice', createdAt: Date.now() - 120_000, expiresAt: expired.expiresAt, revokedAt: null });
  const expiredToken = await new LinkSigner(SECRET).mint(expired);
  const refused = await rawRequest(node.port, { path: '/v1/ws', headers: { ...bearer(expiredToken), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
  t.equal(refused.status, 401);
  t.match(refused.json().message, /share link expired/);
  for (const c of [owner, writer]) c.close();
});

t.test('audit: logins, opens, attaches, kills and links, with principal and address, never a token', async (t) => {
  const before = (await store.listAudit()).length;
  const c = await TestClient.connect(node.url, { token: bob });
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  await c.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  const link = (await api(node, 'POST', `/v1/sessions/${sid}/links`, bob, { role: 'viewer', ttlSeconds: 60 })).json as { id: string; token: string };
  await api(node, 'DELETE', `/v1/sessions/${sid}/links/${link.id}`, bob);
  await c.request({ t: 'kill', sid });
  t.equal((await upgradeStatus(node.port, { headers: bearer('not-a-valid-token-at-all'), localAddress: '127.0.0.4' })).status, 401);
  c.close();

  const types = ['audit.open', 'audit.attach', 'audit.link_mint', 'audit.link_revoke', 'audit.kill'];
  await until(async () => {
    const seen = new Set((await store.listEvents(sid)).map((e) => e.type));
    return types.every((type) => seen.has(type));
  }, 'the session\'s audit events');
  const events = (await store.listEvents(sid)).filter((e) => e.type.startsWith('audit.'));
  t.strictSame(events.map((e) => e.type), types, 'in order');
  for (const e of events) t.match(e.detail, { principal: 'bob', credential: 'jwt', addr: '127.0.0.1' }, e.type);
  t.match(events[1]!.detail, { role: 'viewer' });
  t.match(events[2]!.detail, { link: link.id, role: 'viewer' });
  t.match(events[4]!.detail, { signal: 'SIGHUP' });

  await until(async () => (await store.listAudit()).slice(before).some((e) => e.type === 'login_failed'), 'the failed login');
  const logins = (await store.listAudit()).slice(before);
  t.match(logins.find((e) => e.type === 'login'), { principal: 'bob', addr: '127.0.0.1', detail: { via: 'upgrade', credential: 'jwt' } });
  t.match(logins.find((e) => e.type === 'login_failed'), { principal: null, addr: '127.0.0.4', detail: { via: 'upgrade', reason: /not a JWT/ } });
  const everything = JSON.stringify([events, logins, await store.listAudit()]);
  for (const secret of [bob, alice, TEST_TOKEN, link.token, 'not-a-valid-token-at-all']) t.notOk(everything.includes(secret), 'no credential in the audit trail');
});

t.test('per-principal limits: sessions, opens a minute, input bytes a second; admins exempt', async (t) => {
  const limited = await startNode(['--jwt-secret', SECRET, '--max-sessions-per-principal', '2', '--open-rate', '3', '--input-rate', '1KiB']);
  t.teardown(() => limited.stop());
  const c = await TestClient.connect(limited.url, { token: alice });
  const first = await c.request({ t: 'open', kind: 'echo' });
  await c.request({ t: 'open', kind: 'echo' });
  const third = c.next((f) => f.t === 'error' && f.code === 'rate_limited');
  t.equal(await refusal(c, { t: 'open', kind: 'echo' }), 'rate_limited', 'a third running session');
  t.match((await third).msg, /SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL/);
  t.equal((await api(limited, 'POST', '/v1/sessions', alice, { kind: 'echo' })).status, 429, 'over HTTP too');
  await c.request({ t: 'kill', sid: first.sid });
  await until(async () => (await limited.node.seams.store.getSession(first.sid))?.status === 'exited', 'the session ended');
  const fourth = await c.request({ t: 'open', kind: 'echo' });
  t.ok(fourth.sid, 'room again after a kill');
  await c.request({ t: 'kill', sid: fourth.sid });
  await until(async () => (await limited.node.seams.store.getSession(fourth.sid))?.status === 'exited', 'the session ended');
  const rate = c.next((f) => f.t === 'error' && f.code === 'rate_limited');
  t.equal(await refusal(c, { t: 'open', kind: 'echo' }), 'rate_limited', 'the fourth open in a minute (a refusal for the session count took no open)');
  t.match((await rate).msg, /SWITCHBOARD_OPEN_RATE/);
  t.ok((await rate).retryMs > 0, 'with a retry hint');

  const sid = (await limited.node.seams.store.listSessions({ owner: 'alice', status: ['running'] }))[0]!.sid;
  const acked = c.next((f) => f.t === 'ack' && f.n === 1);
  c.send({ t: 'in', sid, data: Buffer.alloc(1024, 0x61), n: 1 });
  await acked;
  const over = c.next((f) => f.t === 'error' && f.sid === sid);
  c.send({ t: 'in', sid, data: Buffer.alloc(1024, 0x62), n: 2 });
  const e = await over;
  t.equal(e.code, 'rate_limited', 'a second KiB within a second');
  t.match(e.msg, /SWITCHBOARD_INPUT_RATE/);
  t.equal((await c.request({ t: 'ping' })).t, 'pong', 'the connection goes on');

  const admin = await TestClient.connect(limited.url);
  const opened: string[] = [];
  for (let i = 0; i < 6; i++) opened.push((await admin.request({ t: 'open', kind: 'echo' })).sid);
  t.equal(opened.length, 6, 'the admin token is not limited');
  await admin.request({ t: 'attach', sid: opened[0], from: 0 });
  const big = admin.next((f) => f.t === 'ack' && f.n === 9);
  for (let n = 1; n <= 9; n++) admin.send({ t: 'in', sid: opened[0], data: Buffer.alloc(4096, 0x63), n });
  await big;
  t.notOk(admin.frames.some((f) => f.t === 'error'), 'nor its input');
  c.close();
  admin.close();
});

t.test('concurrent opens cannot overshoot the session cap (a place is reserved before the host creates the session)', async (t) => {
  // A store that, like a database, lets other work run before a session record lands:
  // without the reservation every racing open would count the records before any lands.
  const capped = await startNode(['--jwt-secret', SECRET, '--max-sessions-per-principal', '3', '--open-rate', '1000'], (config) => {
    const seams = memorySeams(config);
    const create = seams.store.createSession.bind(seams.store);
    seams.store.createSession = async (record) => {
      for (let turn = 0; turn < 50; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
      return create(record);
    };
    return seams;
  });
  t.teardown(() => capped.stop());
  const token = await jwt('racer');
  const clients = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(capped.url, { token })));
  // Twelve opens at once, three per connection, plus four over HTTP.
  const answers = await Promise.all([
    ...clients.flatMap((c) => Array.from({ length: 3 }, () => refusal(c, { t: 'open', kind: 'echo' }))),
    ...Array.from({ length: 4 }, () => api(capped, 'POST', '/v1/sessions', token, { kind: 'echo' }).then((r) => (r.status === 201 ? undefined : r.json.error))),
  ]);
  t.equal(answers.filter((a) => a === undefined).length, 3, 'exactly the cap opened');
  t.ok(answers.filter((a) => a !== undefined).every((a) => a === 'rate_limited'), 'the rest refused rate_limited');
  const running = await capped.node.seams.store.listSessions({ owner: 'racer', status: ['starting', 'running'] });
  t.equal(running.length, 3, 'three sessions running, not more');
  for (const c of clients) c.close();
});
