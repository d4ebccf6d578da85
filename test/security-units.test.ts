/** Fast unit tests of the edge's pure security helpers (the real-socket tests are in security.test.ts). */
import t from 'tap';
import { clientAddress, normalizeAddress, TrustedProxies } from '../src/edge/client-address.js';
import { bearerToken, isJsonContentType, isLoopbackHost } from '../src/edge/auth.js';
import { chooseVariant, notModified, type Asset } from '../src/edge/static-assets.js';
import { LoginGuard } from '../src/edge/login-guard.js';
import { MemoryLimiter } from '../src/limit/memory-limiter.js';
import { createLogger } from '../src/util/log.js';

t.test('normalizeAddress: one spelling per address', async (t) => {
  t.equal(normalizeAddress('10.1.2.3'), '10.1.2.3');
  t.equal(normalizeAddress(' 10.1.2.3 '), '10.1.2.3');
  t.equal(normalizeAddress('::ffff:10.1.2.3'), '10.1.2.3', 'IPv4-mapped, dotted');
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:ffff:0a01:0203'), '10.1.2.3', 'IPv4-mapped, as uWS writes it');
  t.equal(normalizeAddress('::1'), '0:0:0:0:0:0:0:1');
  t.equal(normalizeAddress('[::1]'), '0:0:0:0:0:0:0:1');
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:0000:0000:0001'), '0:0:0:0:0:0:0:1');
  t.equal(normalizeAddress('FD00::AB'), 'fd00:0:0:0:0:0:0:ab');
  t.equal(normalizeAddress('1:2:3:4:5:6:7.8.9.10'), '1:2:3:4:5:6:708:90a');
  for (const bad of ['', 'unknown', '10.1.2.3:8080', '10.1.2', 'example.com', '1::2::3']) t.equal(normalizeAddress(bad), undefined, `not an address: '${bad}'`);
});

t.test('clientAddress walks X-Forwarded-For from the right through trusted hops', async (t) => {
  const trusted = new TrustedProxies(['127.0.0.1', '10.9.0.0/16', 'fd00::/8']);
  const none = new TrustedProxies([]);
  t.equal(clientAddress('127.0.0.1', ['203.0.113.7'], none), '127.0.0.1', 'nothing trusted: the peer');
  t.equal(clientAddress('192.0.2.1', ['203.0.113.7'], trusted), '192.0.2.1', 'an untrusted peer: its header is ignored');
  t.equal(clientAddress('127.0.0.1', ['203.0.113.7'], trusted), '203.0.113.7');
  t.equal(clientAddress('127.0.0.1', ['198.51.100.1, 203.0.113.7'], trusted), '203.0.113.7', 'the rightmost untrusted wins');
  t.equal(clientAddress('127.0.0.1', ['198.51.100.1', '203.0.113.7, 10.9.1.1'], trusted), '203.0.113.7', 'several lines, trusted hops skipped');
  t.equal(clientAddress('::ffff:127.0.0.1', ['203.0.113.7'], trusted), '203.0.113.7', 'a mapped peer is its IPv4 self');
  t.equal(clientAddress('fd00::5', ['2001:db8::1'], trusted), '2001:db8:0:0:0:0:0:1', 'IPv6 proxies and clients');
  t.equal(clientAddress('127.0.0.1', ['garbage, 10.9.0.4'], trusted), '10.9.0.4', 'an entry that is not an address: the last trusted hop');
  t.equal(clientAddress('127.0.0.1', ['10.9.0.4'], trusted), '10.9.0.4', 'all trusted: the leftmost');
  t.equal(clientAddress('127.0.0.1', [], trusted), '127.0.0.1', 'no header: the peer');
  t.ok(new TrustedProxies(['::ffff:10.0.0.0/104']).has('10.3.4.5'), 'an IPv4-mapped CIDR covers the IPv4 range');
});

t.test('isLoopbackHost: loopback names on our port only', async (t) => {
  for (const host of ['localhost:7070', 'LocalHost:7070', '127.0.0.1:7070', '127.8.9.10:7070', '[::1]:7070']) t.ok(isLoopbackHost(host, 7070), host);
  t.ok(isLoopbackHost('localhost', 80), 'no port means 80');
  for (const host of ['localhost', 'evil.example:7070', '127.0.0.1.evil.example:7070', 'localhost.:7070', '127.0.0.1:7071', '[::2]:7070', '', '[::1]', 'user@localhost:7070', '0.0.0.0:7070']) {
    t.notOk(isLoopbackHost(host, 7070), `refused: '${host}'`);
  }
});

t.test('bearerToken and isJsonContentType', async (t) => {
  t.equal(bearerToken('Bearer abc'), 'abc');
  t.equal(bearerToken('bearer   abc '), 'abc');
  t.equal(bearerToken('Basic abc'), undefined);
  t.equal(bearerToken(''), undefined);
  t.ok(isJsonContentType('application/json'));
  t.ok(isJsonContentType('Application/JSON; charset=utf-8'));
  for (const type of ['', 'text/plain', 'application/jsonp', 'application/x-www-form-urlencoded', 'text/json']) t.notOk(isJsonContentType(type), type);
});

t.test('chooseVariant and notModified', async (t) => {
  const asset: Asset = {
    type: 'text/javascript', cacheControl: 'no-cache',
    variants: [
      { encoding: 'br', body: Buffer.from('b'), etag: '"h-br"' },
      { encoding: 'gzip', body: Buffer.from('g'), etag: '"h-gz"' },
      { encoding: 'identity', body: Buffer.from('i'), etag: '"h"' },
    ],
  };
  const pick = (ae: string): string => chooseVariant(asset, ae).encoding;
  t.equal(pick(''), 'identity');
  t.equal(pick('gzip, deflate, br'), 'br');
  t.equal(pick('gzip'), 'gzip');
  t.equal(pick('x-gzip'), 'gzip');
  t.equal(pick('br;q=0, gzip'), 'gzip');
  t.equal(pick('br;q=0.5, gzip;q=0.8'), 'gzip', 'the higher q');
  t.equal(pick('*'), 'br');
  t.equal(pick('*;q=0'), 'identity');
  t.equal(pick('deflate'), 'identity');
  const plain: Asset = { ...asset, variants: [asset.variants[2]!] };
  t.equal(chooseVariant(plain, 'br').encoding, 'identity', 'no compressed version kept');

  t.notOk(notModified(asset, ''));
  t.ok(notModified(asset, '"h-gz"'));
  t.ok(notModified(asset, 'W/"h"'));
  t.ok(notModified(asset, '"x", "h-br"'));
  t.ok(notModified(asset, '*'));
  t.notOk(notModified(asset, '"h2"'));
});

t.test('LoginGuard: failures counted, then everything refused until the bucket refills', async (t) => {
  let now = 1_000_000;
  const lines: string[] = [];
  const guard = new LoginGuard(new MemoryLimiter(() => now), 2, createLogger('info', 'test', (l) => lines.push(l)));
  t.same(await guard.check('10.0.0.1', true, 'http', '/v1/sessions'), { ok: true }, 'right token, clean record');
  t.same(await guard.check('10.0.0.1', false, 'http', '/v1/sessions'), { ok: false, status: 401 });
  t.same(await guard.check('10.0.0.1', false, 'upgrade', '/v1/ws'), { ok: false, status: 401 });
  const over = await guard.check('10.0.0.1', false, 'page', '/');
  t.match(over, { ok: false, status: 429 });
  t.ok(over.ok === false && over.status === 429 && over.retryMs > 0 && over.retryMs <= 30_000, 'retry within one refill');
  t.match(await guard.check('10.0.0.1', true, 'http', '/v1/sessions'), { ok: false, status: 429 }, 'the right token too');
  await guard.check('10.0.0.1', false, 'http', '/v1/sessions');
  t.same(await guard.check('10.0.0.2', true, 'http', '/v1/sessions'), { ok: true }, 'other addresses unaffected');
  now += 30_000; // one failure forgiven
  t.same(await guard.check('10.0.0.1', true, 'http', '/v1/sessions'), { ok: true }, 'after the refill');
  t.equal(guard.failures, 4);
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(logged.filter((l) => l.msg === 'login failed').length, 2);
  t.equal(logged.filter((l) => String(l.msg).includes('over the limit')).length, 1, 'one line for going over, however many tries follow');
});
