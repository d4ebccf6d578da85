import t from 'tap';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';
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
