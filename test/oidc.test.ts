/**
 * OIDC sign-in on one real node (memory seams) against a real provider (oidc-provider,
 * in this process): the whole flow with a cookie-keeping client, then everything that
 * must be refused. Across nodes behind HAProxy: oidc-haproxy.test.ts.
 */
import t from 'tap';
import { SignJWT } from 'jose';
import { loadConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors/errors.js';
import { SessionCookies } from '../src/auth/session-cookie.js';
import { Browser } from './helpers/browser.js';
import { rawRequest, upgradeStatus } from './helpers/http.js';
import { startNode, type TestNode } from './helpers/node.js';
import { ADMIN_GROUP, CLIENT_ID, CLIENT_SECRET, startProvider, type TestProvider } from './helpers/oidc-provider.js';
import { freePort } from './helpers/redis.js';
import { atProvider, beginSignIn, signIn } from './helpers/sign-in.js';
import { refusal, TestClient } from './helpers/ws.js';

const SESSION_SECRET = 'oidc-test-session-secret-0123456789abcdef';
const JWT_SECRET = 'oidc-test-jwt-secret-0123456789abcdef';

let provider: TestProvider;
let node: TestNode;
let gateway: string;

t.before(async () => {
  const port = await freePort();
  gateway = `http://127.0.0.1:${port}`;
  provider = await startProvider([`${gateway}/auth/callback`]);
  node = await startNode([
    '--port', String(port), '--jwt-secret', JWT_SECRET,
    '--oidc-issuer', provider.issuer, '--oidc-client-id', CLIENT_ID, '--oidc-client-secret', CLIENT_SECRET,
    '--oidc-scopes', 'openid groups', '--oidc-admin-claim', `groups=${ADMIN_GROUP}`, '--session-secret', SESSION_SECRET,
  ]);
});
t.teardown(async () => {
  await node?.stop();
  await provider?.stop();
});

const wsUrl = (): string => `${gateway.replace('http', 'ws')}/v1/ws`;
const withCookie = (cookie: string): Promise<TestClient> => TestClient.connect(wsUrl(), { token: null, headers: { cookie } });
const jwt = (sub: string, expS = Math.floor(Date.now() / 1000) + 600): Promise<string> =>
  new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(expS).sign(new TextEncoder().encode(JWT_SECRET));

t.test('a whole sign-in: PKCE, state and nonce; the cookie opens a WebSocket as that principal', async (t) => {
  const browser = new Browser();
  const begun = await beginSignIn(browser, gateway, '/?sid=abc');
  const auth = begun.location!;
  t.equal(auth.origin, provider.issuer, 'sent to the provider');
  t.equal(auth.searchParams.get('code_challenge_method'), 'S256');
  t.match(auth.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  t.match(auth.searchParams.get('state'), /^[A-Za-z0-9_-]{43}$/);
  t.match(auth.searchParams.get('nonce'), /^[A-Za-z0-9_-]{43}$/);
  t.equal(auth.searchParams.get('redirect_uri'), `${gateway}/auth/callback`);
  t.equal(auth.searchParams.get('scope'), 'openid groups');
  t.notOk(auth.href.includes('verifier'), 'the verifier stays on the server');
  t.match(begun.setCookies.join('\n'), /sb_login=[A-Za-z0-9_-]+; Path=\/auth\/callback; HttpOnly; SameSite=Lax; Max-Age=600/, 'the binding cookie');

  const callbackUrl = await atProvider(browser, auth, 'alice');
  t.equal(callbackUrl.origin + callbackUrl.pathname, `${gateway}/auth/callback`);
  const done = await browser.get(callbackUrl);
  t.equal(done.status, 302, done.text);
  t.equal(done.header('location'), '/?sid=abc', 'back to the return path');
  const cookies = done.setCookies.join('\n');
  t.match(cookies, /sb_session=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=28800(\n|$)/, 'HttpOnly, Lax, 8 h, not Secure on http');
  t.match(cookies, /sb_login=; Path=\/auth\/callback; .*Max-Age=0/, 'the binding cookie is cleared');
  t.match(cookies, /sb_token=; Path=\/; .*Max-Age=0/, 'and any token cookie: the newest sign-in wins');

  const cookie = browser.cookieHeader(`${gateway}/v1/ws`);
  t.match(cookie, /sb_session=/);
  const session = await (await fetch(`${gateway}/auth/session`, { headers: { cookie } })).json();
  t.match(session, { oidc: true, signedIn: true, principal: 'alice', admin: false });

  const alice = await withCookie(cookie);
  const { sid } = await alice.request({ t: 'open', kind: 'echo' });
  t.equal((await node.node.seams.store.getSession(sid))?.owner, 'alice', 'the session is owned by the ID token\'s sub');
  const bob = await TestClient.connect(wsUrl(), { token: await jwt('bob') });
  const bobs = await bob.request({ t: 'open', kind: 'echo' });
  t.equal(await refusal(alice, { t: 'attach', sid: bobs.sid, from: 0 }), 'not_found', 'another user\'s session is not_found');
  t.equal(await refusal(bob, { t: 'attach', sid, from: 0 }), 'not_found', 'and hers to him');
  alice.send({ t: 'in', sid, data: Buffer.from('signed-in') });
  await alice.waitForOutput(sid, 'signed-in');

  const api = await rawRequest(node.port, { path: '/v1/sessions', headers: { cookie } });
  t.equal(api.status, 401, 'the HTTP API does not take the session cookie (one rule with sb_token)');

  const logins = await node.node.seams.store.listAudit({ type: 'login' });
  t.ok(logins.some((e) => e.principal === 'alice' && e.detail.via === 'oidc' && e.detail.credential === 'oidc'), 'the sign-in is audited');
  t.ok(logins.some((e) => e.principal === 'alice' && e.detail.via === 'upgrade'), 'and the upgrade with its cookie');
  alice.close();
  bob.close();

  const replay = await new Browser().get(callbackUrl);
  t.equal(replay.status, 400, 'the same callback again (another browser): refused');
  const replaySame = await browser.get(callbackUrl);
  t.equal(replaySame.status, 400, 'even from the same browser: the state was used');
  t.match(replaySame.text, /login_state_invalid/);
  t.match(replaySame.text, /already used/);
});

t.test('the callback must come from the browser that began; unknown states are refused', async (t) => {
  const victim = new Browser();
  const attacker = new Browser();
  const begun = await beginSignIn(attacker, gateway);
  const callbackUrl = await atProvider(attacker, begun.location!, 'mallory');
  const res = await victim.get(callbackUrl);
  t.equal(res.status, 400, 'another browser cannot complete it (login CSRF)');
  t.match(res.text, /login_state_invalid/);
  t.notOk(res.setCookies.some((c) => c.startsWith('sb_session=')), 'no session cookie');
  t.equal((await attacker.get(callbackUrl)).status, 400, 'and the state is spent');
  const unknown = await victim.get(`${gateway}/auth/callback?state=${'A'.repeat(43)}&code=x`);
  t.equal(unknown.status, 400);
  t.match(unknown.text, /unknown, expired/);
  t.equal((await victim.get(`${gateway}/auth/callback?code=x`)).status, 400, 'no state at all');
});

t.test('tampered, foreign and expired session cookies are refused', async (t) => {
  const good = await new SessionCookies(SESSION_SECRET, 3_600_000).issue({ name: 'carol', admin: false });
  t.equal((await upgradeStatus(node.port, { headers: { cookie: `sb_session=${good.value}` } })).status, 101, 'a cookie this secret signed works');
  const [header, payload, signature] = good.value.split('.') as [string, string, string];
  const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), adm: true })).toString('base64url');
  const tampered = [
    `${header}.${forgedPayload}.${signature}`,
    `${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`,
    'not-a-cookie',
  ];
  for (const value of tampered) t.equal((await upgradeStatus(node.port, { headers: { cookie: `sb_session=${value}` } })).status, 401, `tampered: ${value.slice(-12)}`);
  const foreign = await new SessionCookies('another-secret-entirely-0123456789abcdef', 3_600_000).issue({ name: 'carol', admin: false });
  t.equal((await upgradeStatus(node.port, { headers: { cookie: `sb_session=${foreign.value}` } })).status, 401, 'signed with another secret');
  const expired = await new SessionCookies(SESSION_SECRET, 60_000, () => Date.now() - 3_600_000).issue({ name: 'carol', admin: false });
  t.equal((await upgradeStatus(node.port, { headers: { cookie: `sb_session=${expired.value}` } })).status, 401, 'expired');
  const session = await (await fetch(`${gateway}/auth/session`, { headers: { cookie: `sb_session=${expired.value}` } })).json();
  t.match(session, { oidc: true, signedIn: false }, 'the page is told to offer Sign in');
  const failures = await node.node.seams.store.listAudit({ type: 'login_failed' });
  t.ok(failures.some((e) => e.detail.reason === 'sign-in session expired'), 'failed logins, with the reason');
});

t.test('an open redirect in return is sanitised to /', async (t) => {
  const res = await signIn(new Browser(), gateway, 'dave', '//evil.example/steal');
  t.equal(res.status, 302);
  t.equal(res.header('location'), '/', 'never off-site');
});

t.test('the provider refuses (the user cancels): 401 login_failed, audited', async (t) => {
  const browser = new Browser();
  const begun = await beginSignIn(browser, gateway);
  const callbackUrl = await atProvider(browser, begun.location!, 'erin', { abort: true });
  t.equal(callbackUrl.searchParams.get('error'), 'access_denied');
  const res = await browser.get(callbackUrl);
  t.equal(res.status, 401);
  t.match(res.text, /login_failed/);
  t.match(res.text, /access_denied/);
  t.notOk(res.setCookies.some((c) => c.startsWith('sb_session=')), 'no session cookie');
  const failures = await node.node.seams.store.listAudit({ type: 'login_failed' });
  t.ok(failures.some((e) => e.detail.via === 'oidc' && /access_denied/.test(String(e.detail.reason))), 'audited as a failed login');
});

t.test('an ID token claim maps to the admin role', async (t) => {
  const owner = await TestClient.connect(wsUrl(), { token: await jwt('frank') });
  const { sid } = await owner.request({ t: 'open', kind: 'echo' });
  const browser = new Browser();
  await signIn(browser, gateway, 'ops-1');
  const cookie = browser.cookieHeader(`${gateway}/`);
  t.match(await (await fetch(`${gateway}/auth/session`, { headers: { cookie } })).json(), { principal: 'ops-1', admin: true });
  const ops = await withCookie(cookie);
  const attached = await ops.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  t.equal(attached.t, 'attached', 'an administrator may attach to anyone\'s session');
  ops.close();
  owner.close();
});

t.test('logout clears the cookies; the Origin and JSON rules of the API apply', async (t) => {
  const foreign = await rawRequest(node.port, { method: 'POST', path: '/auth/logout', headers: { origin: 'http://evil.example' } });
  t.equal(foreign.status, 403);
  const form = await rawRequest(node.port, { method: 'POST', path: '/auth/logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
  t.equal(form.status, 415);
  t.equal(form.json().error, 'unsupported_media_type');
  const res = await rawRequest(node.port, { method: 'POST', path: '/auth/logout', headers: { origin: gateway } });
  t.equal(res.status, 200);
  const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []).join('\n');
  t.match(cookies, /sb_session=; Path=\/; HttpOnly; SameSite=Lax; Max-Age=0/);
  t.match(cookies, /sb_token=; Path=\/; HttpOnly; SameSite=Lax; Max-Age=0/);
});

t.test('a socket closes with error unauthorized when its sign-in or its JWT expires', async (t) => {
  // A sign-in made 58 s ago with a one-minute life: 2 s left.
  const soon = await new SessionCookies(SESSION_SECRET, 60_000, () => Date.now() - 58_000).issue({ name: 'gina', admin: false });
  const viaCookie = await withCookie(`sb_session=${soon.value}`);
  const viaJwt = await TestClient.connect(wsUrl(), { token: await jwt('hank', Math.floor(Date.now() / 1000) + 2) });
  const errors = [viaCookie.next((f) => f.t === 'error'), viaJwt.next((f) => f.t === 'error')];
  for (const [i, [c, what]] of ([[viaCookie, 'sign-in session expired'], [viaJwt, 'JWT expired']] as const).entries()) {
    const err = await errors[i]!;
    t.equal(err.code, 'unauthorized', what);
    t.match(err.msg, what);
    t.equal(err.temporary, false);
    t.match(await c.closed, { code: 1008, reason: what });
  }
});

t.test('without OIDC configured: no sign-in routes, and the page is told', async (t) => {
  const plain = await startNode();
  t.teardown(() => plain.stop());
  const login = await rawRequest(plain.port, { path: '/auth/login' });
  t.equal(login.status, 404);
  t.match(login.text, /SWITCHBOARD_OIDC_ISSUER/);
  t.strictSame((await rawRequest(plain.port, { path: '/auth/session' })).json(), { oidc: false, signedIn: false, tokenCookie: false });
  t.match((await rawRequest(plain.port, { path: '/auth/session', headers: { cookie: 'sb_token=x' } })).json(), { tokenCookie: true }, 'a token cookie is reported held (not checked)');
  const good = await new SessionCookies(SESSION_SECRET, 3_600_000).issue({ name: 'ivy', admin: false });
  t.equal((await upgradeStatus(plain.port, { headers: { cookie: `sb_session=${good.value}` } })).status, 401, 'a session cookie means nothing there');
});

t.test('missing or bad OIDC settings stop the node at start, naming the setting', async (t) => {
  const issuer = 'https://id.example.com';
  const fails = (env: Record<string, string>, setting: string, message: RegExp): void => {
    let caught: unknown;
    try {
      loadConfig([], env);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${setting}: refused at start`);
    t.equal((caught as ConfigError).setting, setting);
    t.match((caught as ConfigError).message, message);
  };
  fails({ SWITCHBOARD_OIDC_CLIENT_ID: 'x' }, 'SWITCHBOARD_OIDC_ISSUER', /is required/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_SESSION_SECRET: SESSION_SECRET }, 'SWITCHBOARD_OIDC_CLIENT_ID', /is required/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x' }, 'SWITCHBOARD_SESSION_SECRET', /is required/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: 'short' }, 'SWITCHBOARD_SESSION_SECRET', /at least 32/);
  fails({ SWITCHBOARD_OIDC_ISSUER: 'http://id.example.com', SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET }, 'SWITCHBOARD_OIDC_ISSUER', /https/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET, SWITCHBOARD_OIDC_ADMIN_CLAIM: 'groups' }, 'SWITCHBOARD_OIDC_ADMIN_CLAIM', /claim=value/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET, SWITCHBOARD_OIDC_SESSION_TTL: '10s' }, 'SWITCHBOARD_OIDC_SESSION_TTL', /1m and 30d/);
  fails({ SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET, SWITCHBOARD_AUTH: 'none' }, 'SWITCHBOARD_OIDC_ISSUER', /authentication on/);
  const ok = loadConfig([], { SWITCHBOARD_OIDC_ISSUER: issuer, SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET, SWITCHBOARD_OIDC_SCOPES: 'profile,email' });
  t.equal(ok.oidcScopes, 'openid profile email', 'openid is always asked for');
  t.equal(ok.oidcClientSecret, undefined, 'a public client needs no secret');
  t.equal(ok.oidcSessionTtlMs, 8 * 3_600_000);
  t.equal(loadConfig([], { SWITCHBOARD_OIDC_ISSUER: 'http://127.0.0.1:9000', SWITCHBOARD_OIDC_CLIENT_ID: 'x', SWITCHBOARD_SESSION_SECRET: SESSION_SECRET }).oidcIssuer, 'http://127.0.0.1:9000', 'http on loopback is allowed');
});
