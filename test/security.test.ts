import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { spawnNode } from './helpers/processes.js';
import { until } from './helpers/redis.js';
import { TestClient } from './helpers/ws.js';
import { rawRequest, upgradeStatus } from './helpers/http.js';
import { encodeValue } from '../src/protocol/codec.js';
import { loadConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors/errors.js';

let server: TestNode;
t.before(async () => {
  server = await startNode(['--max-frame', '4KiB', '--origins', 'https://allowed.example', '--connect-rate', '1000']);
});
t.teardown(() => server.stop());

t.test('upgrade refusals happen before the socket opens', async (t) => {
  await t.rejects(TestClient.connect(server.url, { token: null }), { message: 'HTTP 401' }, 'no token');
  await t.rejects(TestClient.connect(server.url, { token: 'wrong-token-wrong' }), { message: 'HTTP 401' }, 'wrong token');
  await t.rejects(TestClient.connect(server.url, { headers: { origin: 'https://evil.example' } }), { message: 'HTTP 403' }, 'foreign origin');
  const sameOrigin = await TestClient.connect(server.url, { headers: { origin: `http://127.0.0.1:${server.port}` } });
  t.equal((await sameOrigin.request({ t: 'ping' })).t, 'pong', 'same origin is allowed');
  sameOrigin.close();
  const listed = await TestClient.connect(server.url, { headers: { origin: 'https://allowed.example' } });
  t.equal((await listed.request({ t: 'ping' })).t, 'pong', 'a listed origin is allowed');
  listed.close();
});

t.test('credentials: bearer subprotocol and cookie', async (t) => {
  const viaProtocol = await TestClient.connect(server.url, { token: null, protocols: ['switchboard.v1', `bearer.${TEST_TOKEN}`] });
  t.equal(viaProtocol.ws.protocol, 'switchboard.v1', 'the server answers with our subprotocol');
  t.equal((await viaProtocol.request({ t: 'ping' })).t, 'pong');
  viaProtocol.close();
  const viaCookie = await TestClient.connect(server.url, { token: null, headers: { cookie: `other=1; sb_token=${TEST_TOKEN}` } });
  t.equal((await viaCookie.request({ t: 'ping' })).t, 'pong');
  viaCookie.close();
});

t.test('web login sets the cookie and cleans the URL', async (t) => {
  const res = await fetch(`${server.http}/?token=${TEST_TOKEN}&sid=abc`, { redirect: 'manual' });
  t.equal(res.status, 302);
  t.equal(res.headers.get('location'), '/?sid=abc');
  t.match(res.headers.get('set-cookie'), /sb_token=.*HttpOnly/);
  const wrong = await fetch(`${server.http}/?token=nope`, { redirect: 'manual' });
  t.equal(wrong.status, 401);
});

t.test('malformed frames get bad_frame and break nothing', async (t) => {
  const c = await TestClient.connect(server.url);
  const bystander = await TestClient.connect(server.url);
  const { sid } = await bystander.request({ t: 'open', kind: 'echo' });
  const cases: Array<[string, Uint8Array | string]> = [
    ['text frame', 'hello'],
    ['not msgpack', Buffer.from([0xc1, 0xc1, 0xc1])],
    ['not a map', encodeValue([1, 2, 3])],
    ['no type', encodeValue({ ref: 1 })],
    ['unknown type', encodeValue({ t: 'teleport', ref: 2 })],
    ['string data', encodeValue({ t: 'in', sid, data: 'text not bin' })],
    ['bad sid', encodeValue({ t: 'attach', ref: 3, sid: '../../etc' })],
    ['negative ref', encodeValue({ t: 'ping', ref: -1 })],
    ['huge cols', encodeValue({ t: 'open', ref: 4, kind: 'echo', cols: 100000 })],
    ['bad kind', encodeValue({ t: 'open', ref: 5, kind: 'vm' })],
    ['bad signal', encodeValue({ t: 'kill', ref: 6, sid, signal: 'SIGNOPE' })],
  ];
  for (const [name, payload] of cases) {
    const err = c.next((f) => f.t === 'error');
    c.sendRaw(payload);
    const e = await err;
    t.equal(e.code, 'bad_frame', name);
    t.type(e.msg, 'string');
  }
  const withRef = c.next((f) => f.t === 'error');
  c.sendRaw(encodeValue({ t: 'open', ref: 77, kind: 'vm' }));
  t.equal((await withRef).ref, 77, 'the error carries the ref when it can');
  t.equal((await c.request({ t: 'ping' })).t, 'pong', 'the connection still works');
  bystander.send({ t: 'in', sid, data: Buffer.from('still fine') });
  await bystander.waitForOutput(sid, 'still fine');
  t.pass('other sessions unharmed');
  c.close();
  bystander.close();
});

t.test('a flood of bad frames closes 1008', async (t) => {
  const c = await TestClient.connect(server.url);
  for (let i = 0; i < 40; i++) c.sendRaw('garbage');
  const closed = await c.closed;
  t.equal(closed.code, 1008);
});

t.test('an oversized frame closes 1009', async (t) => {
  const c = await TestClient.connect(server.url);
  c.sendRaw(encodeValue({ t: 'ping', ref: 1, pad: Buffer.alloc(8192) }));
  t.equal((await c.closed).code, 1009);
  const after = await TestClient.connect(server.url);
  t.equal((await after.request({ t: 'ping' })).t, 'pong', 'the server still serves');
  after.close();
});

t.test('a frame flood is rate limited', async (t) => {
  const limited = await startNode(['--frame-rate', '20']);
  t.teardown(() => limited.stop());
  const c = await TestClient.connect(limited.url);
  for (let i = 0; i < 60; i++) c.send({ t: 'ping', ref: 1000 + i });
  const e = await c.next((f) => f.t === 'error' && f.code === 'rate_limited');
  t.match(e.msg, /retry/);
  c.close();
});

t.test('too many connections from one address get 429', async (t) => {
  const limited = await startNode(['--connect-rate', '2']);
  t.teardown(() => limited.stop());
  const a = await TestClient.connect(limited.url);
  const b = await TestClient.connect(limited.url);
  await t.rejects(TestClient.connect(limited.url), { message: 'HTTP 429' });
  a.close();
  b.close();
});

function configError(fn: () => unknown): ConfigError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  return undefined;
}

t.test('config: errors name the setting; no auth off a loopback address', async (t) => {
  t.throws(() => loadConfig(['--port', '99999'], {}), new ConfigError('SWITCHBOARD_PORT', 'must be 0-65535 (got 99999)'));
  t.equal(configError(() => loadConfig([], { SWITCHBOARD_REPLAY_BYTES: 'lots' }))?.setting, 'SWITCHBOARD_REPLAY_BYTES');
  t.equal(configError(() => loadConfig(['--bogus', '1'], {}))?.setting, '--bogus');
  const noAuth = configError(() => loadConfig(['--host', '0.0.0.0', '--auth', 'none'], {}));
  t.equal(noAuth?.setting, 'SWITCHBOARD_AUTH');
  t.match(noAuth?.message, /non-loopback/);
  t.equal(configError(() => loadConfig(['--low-watermark', '1MiB'], {}))?.setting, 'SWITCHBOARD_LOW_WATERMARK');
  const c = loadConfig(['--replay-bytes=2MiB', '--redis-url', 'redis://a:1,redis://b:2'], { SWITCHBOARD_PORT: '8080' });
  t.equal(c.replayBytes, 2 * 1024 * 1024);
  t.same(c.redisUrls, ['redis://a:1', 'redis://b:2']);
  t.equal(c.port, 8080);
  t.ok(Object.isFrozen(c));
  t.equal(loadConfig(['--host', '127.0.0.1', '--auth', 'none'], {}).auth, 'none', 'loopback without auth is allowed');
});

const bearer = { authorization: `Bearer ${TEST_TOKEN}` };

async function sessionCount(port: number): Promise<number> {
  const res = await rawRequest(port, { path: '/v1/sessions', headers: bearer });
  return (res.json() as { sessions: unknown[] }).sessions.length;
}

t.test('HTTP API: cookie not accepted, Origin checked, JSON bodies only (CSRF)', async (t) => {
  const port = server.port;
  const cookie = `sb_token=${TEST_TOKEN}`;
  const self = `http://127.0.0.1:${port}`;
  const body = JSON.stringify({ kind: 'echo' });
  const before = await sessionCount(port);

  // The attack as found: a form on another site posts text/plain with the victim's cookie.
  const attack = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { cookie, origin: 'http://evil.example', 'content-type': 'text/plain' }, body });
  t.equal(attack.status, 403, 'a foreign Origin is refused');
  t.match(attack.json(), { error: 'forbidden', message: /SWITCHBOARD_ORIGINS/ });
  // Another port of the same host is the same site, so SameSite would not stop it: the cookie itself must not work.
  const cookieOnly = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { cookie, origin: self, 'content-type': 'application/json' }, body });
  t.equal(cookieOnly.status, 401, 'the cookie is no credential for the API');
  t.match(cookieOnly.json(), { error: 'unauthorized', message: /Authorization: Bearer/ });
  const cookieGet = await rawRequest(port, { path: '/v1/sessions', headers: { cookie } });
  t.equal(cookieGet.status, 401, 'not for reading either');

  const foreign = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { ...bearer, origin: 'http://evil.example', 'content-type': 'application/json' }, body });
  t.equal(foreign.status, 403, 'a foreign Origin is refused even with the header');
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const res = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { ...bearer, 'content-type': type }, body });
    t.equal(res.status, 415, `${type} is refused`);
    t.match(res.json(), { error: 'unsupported_media_type', message: /application\/json/ });
  }
  const untyped = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: bearer, body });
  t.equal(untyped.status, 415, 'a body without Content-Type is refused');
  t.equal(untyped.json().error, 'unsupported_media_type');
  t.equal(await sessionCount(port), before, 'none of those created a session');

  const listed = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { ...bearer, origin: 'https://allowed.example', 'content-type': 'application/json; charset=utf-8' }, body });
  t.equal(listed.status, 201, 'header + allowed Origin + JSON creates a session');
  const plain = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { ...bearer, 'content-type': 'application/json' }, body });
  t.equal(plain.status, 201, 'a non-browser client (no Origin) is served');
  t.equal(await sessionCount(port), before + 2);
  for (const sid of [listed.json().sid, plain.json().sid]) {
    t.equal((await rawRequest(port, { method: 'DELETE', path: `/v1/sessions/${sid}`, headers: bearer })).status, 200);
  }

  // Drain is as open to the same attack as session creation.
  const drainPath = `/v1/nodes/${encodeURIComponent(server.config.nodeId)}/drain`;
  const drainAttack = await rawRequest(port, { method: 'POST', path: drainPath, headers: { cookie, origin: 'http://evil.example', 'content-type': 'text/plain' }, body: 'x' });
  t.equal(drainAttack.status, 403);
  const drainCookie = await rawRequest(port, { method: 'POST', path: drainPath, headers: { cookie } });
  t.equal(drainCookie.status, 401);
  const drainForm = await rawRequest(port, { method: 'POST', path: drainPath, headers: { ...bearer, 'content-type': 'text/plain' }, body: 'x' });
  t.equal(drainForm.status, 415);
  t.equal((await rawRequest(port, { path: '/readyz' })).status, 200, 'the node is not draining');
});

t.test('authentication off: only loopback Host names are served (DNS rebinding)', async (t) => {
  const open = await startNode(['--auth', 'none']);
  t.teardown(() => open.stop());
  const port = open.port;
  const evil = `evil.example:${port}`;
  for (const [method, path] of [['GET', '/'], ['GET', '/terminal.js'], ['GET', '/v1/sessions'], ['GET', '/healthz'], ['GET', '/metrics']] as const) {
    const res = await rawRequest(port, { method, path, headers: { host: evil } });
    t.equal(res.status, 403, `${method} ${path} with Host ${evil}`);
  }
  const post = await rawRequest(port, { method: 'POST', path: '/v1/sessions', headers: { host: evil, origin: `http://${evil}`, 'content-type': 'application/json' }, body: '{"kind":"echo"}' });
  t.equal(post.status, 403, 'no session for a rebound name');
  t.match(post.json(), { error: 'forbidden', message: /localhost/ });
  t.equal((await upgradeStatus(port, { headers: { host: evil, origin: `http://${evil}` } })).status, 403, 'no shell for a rebound name');
  t.equal((await rawRequest(port, { path: '/v1/sessions', headers: { host: `127.0.0.1:${port + 1}` } })).status, 403, 'another port is another origin');

  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]) {
    t.equal((await rawRequest(port, { path: '/v1/sessions', headers: { host } })).status, 200, `Host ${host} is served`);
  }
  t.equal((await upgradeStatus(port, { headers: { host: `localhost:${port}`, origin: `http://localhost:${port}` } })).status, 101, 'the page on localhost gets its shell');
  // With authentication on, names other than loopback are fine (the token protects).
  t.equal((await rawRequest(server.port, { path: '/v1/sessions', headers: { ...bearer, host: `gateway.example:${server.port}` } })).status, 200);
});

t.test('failed logins are limited per address, logged without the token', async (t) => {
  const node = await spawnNode('logins', {}, ['--login-failure-rate', '3']);
  t.teardown(() => node.stop());
  const wrong = 'wrong-token-never-right-42';
  t.equal((await rawRequest(node.port, { path: '/v1/sessions', headers: { authorization: `Bearer ${wrong}` } })).status, 401, 'HTTP: 401');
  t.equal((await upgradeStatus(node.port, { headers: { authorization: `Bearer ${wrong}` } })).status, 401, 'upgrade: 401');
  t.equal((await rawRequest(node.port, { path: `/?token=${wrong}` })).status, 401, 'web login: 401');
  const over = await rawRequest(node.port, { path: '/v1/sessions', headers: { authorization: `Bearer ${wrong}` } });
  t.equal(over.status, 429, 'the fourth failure in a minute: 429');
  t.match(over.json(), { error: 'rate_limited', message: /failed logins/ });
  t.ok(Number(over.headers['retry-after']) >= 1, `Retry-After ${over.headers['retry-after']}`);

  // Over the limit, the right token is refused too, or guessing would go on unhindered.
  t.equal((await rawRequest(node.port, { path: '/v1/sessions', headers: bearer })).status, 429, 'right token over HTTP: 429');
  const ws = await upgradeStatus(node.port, { headers: bearer });
  t.equal(ws.status, 429, 'right token on upgrade: 429');
  t.ok(Number(ws.retryAfter) >= 1, 'with Retry-After');
  t.equal((await rawRequest(node.port, { path: `/?token=${TEST_TOKEN}` })).status, 429, 'right token on web login: 429');
  t.equal((await rawRequest(node.port, { path: '/v1/sessions' })).status, 401, 'no credential at all: 401, not counted');

  // Another address is not affected.
  t.equal((await rawRequest(node.port, { path: '/v1/sessions', headers: bearer, localAddress: '127.0.0.2' })).status, 200, 'another address: 200');
  t.equal((await upgradeStatus(node.port, { headers: bearer, localAddress: '127.0.0.2' })).status, 101, 'another address: upgrade');

  await until(() => node.logs.some((l) => l.includes('over the limit')), 'the over-the-limit log line');
  const lines = node.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  const failed = lines.filter((l) => l.msg === 'login failed');
  t.same(failed.map((l) => [l.addr, l.via]), [['127.0.0.1', 'http'], ['127.0.0.1', 'upgrade'], ['127.0.0.1', 'page']], 'each failure logged with its address');
  t.equal(lines.filter((l) => String(l.msg).includes('over the limit')).length, 1, 'going over is logged once');
  t.notOk(node.logs.some((l) => l.includes(wrong) || l.includes(TEST_TOKEN)), 'no token in any log line');
});

t.test('trusted proxies: the client address comes from X-Forwarded-For, for every limit', async (t) => {
  const proxied = await startNode(['--trusted-proxies', '127.0.0.1, 10.9.0.0/16', '--connect-rate', '2', '--login-failure-rate', '1']);
  t.teardown(() => proxied.stop());
  const via = (xff: string | string[], extra: Record<string, string> = bearer) => ({ headers: { ...extra, 'x-forwarded-for': xff } });
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.1'))).status, 101);
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.1'))).status, 101);
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.1'))).status, 429, 'the third from 10.0.0.1 in a minute');
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.2'))).status, 101, 'another client behind the same proxy has its own limit');
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.2, 10.0.0.1'))).status, 429, 'what a client writes itself, left of its real address, is ignored');
  t.equal((await upgradeStatus(proxied.port, via(['10.0.0.3', '10.0.0.1']))).status, 429, 'a second header line (a proxy adding its own) counts as appended');
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.1, 10.9.3.4'))).status, 429, 'trusted hops inside are skipped');
  t.equal((await upgradeStatus(proxied.port, via('10.0.0.9', {}))).status, 401, 'no token: 401');

  // A peer that is not a trusted proxy cannot choose its address.
  const direct = { localAddress: '127.0.0.2' };
  t.equal((await upgradeStatus(proxied.port, { ...direct, ...via('10.0.0.20') })).status, 101);
  t.equal((await upgradeStatus(proxied.port, { ...direct, ...via('10.0.0.21') })).status, 101);
  t.equal((await upgradeStatus(proxied.port, { ...direct, ...via('10.0.0.22') })).status, 429, 'an untrusted peer is limited by its own address');

  // Failed logins are counted per client too.
  const wrong = { authorization: 'Bearer wrong-token-never-right-42' };
  t.equal((await rawRequest(proxied.port, { path: '/v1/sessions', ...via('10.0.0.30', wrong) })).status, 401);
  t.equal((await rawRequest(proxied.port, { path: '/v1/sessions', ...via('10.0.0.30', wrong) })).status, 429);
  t.equal((await rawRequest(proxied.port, { path: '/v1/sessions', ...via('10.0.0.31') })).status, 200, 'a neighbour behind the proxy is not locked out');

  // Without trusted proxies the header means nothing.
  const plain = await startNode(['--connect-rate', '2']);
  t.teardown(() => plain.stop());
  t.equal((await upgradeStatus(plain.port, via('10.0.0.1'))).status, 101);
  t.equal((await upgradeStatus(plain.port, via('10.0.0.2'))).status, 101);
  t.equal((await upgradeStatus(plain.port, via('10.0.0.3'))).status, 429, 'X-Forwarded-For ignored');
});

t.test('/metrics: admin-only on the main port; SWITCHBOARD_METRICS_PORT serves it apart', async (t) => {
  t.equal((await rawRequest(server.port, { path: '/metrics' })).status, 401, 'no token');
  t.equal((await rawRequest(server.port, { path: '/metrics', headers: { cookie: `sb_token=${TEST_TOKEN}` } })).status, 401, 'the cookie is not enough');
  const ok = await rawRequest(server.port, { path: '/metrics', headers: bearer });
  t.equal(ok.status, 200);
  t.match(ok.text, /switchboard_login_failures_total\{node=/);

  const withListener = await startNode(['--metrics-port', '0']);
  t.teardown(() => withListener.stop());
  const metricsPort = withListener.node.server.metricsPort!;
  t.type(metricsPort, 'number');
  t.not(metricsPort, withListener.port);
  const scraped = await rawRequest(metricsPort, { path: '/metrics' });
  t.equal(scraped.status, 200, 'no token needed on the metrics listener');
  t.match(scraped.headers['content-type'], /text\/plain/);
  t.match(scraped.text, /switchboard_clients\{node=/);
  t.equal((await rawRequest(metricsPort, { path: '/v1/sessions', headers: bearer })).status, 404, 'nothing else there');
  t.equal((await rawRequest(metricsPort, { path: '/metrics', headers: { host: `evil.example:${metricsPort}` } })).status, 403, 'on loopback, a rebound name is refused');
  t.equal((await rawRequest(metricsPort, { path: '/metrics', headers: { host: `localhost:${metricsPort}` } })).status, 200);
  t.equal((await rawRequest(withListener.port, { path: '/metrics' })).status, 401, 'still admin-only on the main port');
  t.equal(loadConfig(['--metrics-port', 'off'], {}).metricsPort, undefined);
  t.equal(configError(() => loadConfig(['--metrics-port', 'on'], {}))?.setting, 'SWITCHBOARD_METRICS_PORT');
});

t.test('config: short tokens and bad proxy lists are refused at start', async (t) => {
  const short = configError(() => loadConfig(['--token', 'fifteen-chars15'], {}));
  t.equal(short?.setting, 'SWITCHBOARD_TOKEN');
  t.match(short?.message, /at least 16 characters/);
  t.equal(loadConfig(['--token', 'sixteen-chars-16'], {}).token, 'sixteen-chars-16');
  for (const bad of ['10.0.0.0/33', 'proxy.example', '::1/129', '10.0.0.1/8/1']) {
    t.equal(configError(() => loadConfig(['--trusted-proxies', bad], {}))?.setting, 'SWITCHBOARD_TRUSTED_PROXIES', bad);
  }
  t.same(loadConfig(['--trusted-proxies', '10.0.0.0/8, ::1 fd00::/8'], {}).trustedProxies, ['10.0.0.0/8', '::1', 'fd00::/8']);

  const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const proc = spawn(process.execPath, [main, 'serve', '--port', '0'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SWITCHBOARD_TOKEN: 'short-token' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = await once(proc, 'exit');
  t.equal(code, 2, 'serve exits with a usage error');
  t.match(stderr, /SWITCHBOARD_TOKEN: must be at least 16 characters/);
});
