/**
 * PendingLogins over memory and a private redis-server (two clients: two nodes), and
 * the pure helpers of the sign-in: the return path, cookies, the session cookie.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { MemoryPendingLogins } from '../src/auth/memory-pending-logins.js';
import { RedisPendingLogins, pendingLoginKey } from '../src/auth/redis-pending-logins.js';
import { parsePendingLogin } from '../src/auth/pending-logins.js';
import { redirectUriFor, safeReturnPath } from '../src/auth/oidc.js';
import { cookieValue, SessionCookies, setCookie } from '../src/auth/session-cookie.js';
import { InvalidCredential } from '../src/auth/jwt.js';
import { startRedis } from './helpers/redis.js';
import { pendingLoginsContract } from './contract/pending-logins.js';

t.test('contract: memory', (t) => pendingLoginsContract(t, async () => {
  const m = new MemoryPendingLogins();
  return { a: m, b: m, close: () => m.close() };
}));

t.test('contract: redis', async (t) => {
  const server = await startRedis();
  t.teardown(() => server.stop());
  await pendingLoginsContract(t, async () => {
    const [ca, cb] = [new Redis(server.url), new Redis(server.url)];
    return {
      a: new RedisPendingLogins(ca), b: new RedisPendingLogins(cb),
      close: async () => {
        ca.disconnect();
        cb.disconnect();
      },
    };
  });
  const c = new Redis(server.url);
  t.teardown(() => c.disconnect());
  await new RedisPendingLogins(c).put('ttl-check', parsePendingLogin('{"nonce":"n","verifier":"v","returnTo":"/","redirectUri":"u","binding":"b","createdAt":1}')!, 600_000);
  const ttl = await c.pttl(pendingLoginKey('ttl-check'));
  t.ok(ttl > 0 && ttl <= 600_000, `the key expires by itself (PTTL ${ttl})`);
});

t.test('memory: bounded, the oldest dropped first', async (t) => {
  const m = new MemoryPendingLogins(3);
  const l = parsePendingLogin('{"nonce":"n","verifier":"v","returnTo":"/","redirectUri":"u","binding":"b","createdAt":1}')!;
  for (const s of ['s1', 's2', 's3', 's4']) await m.put(s, l, 60_000);
  t.equal(await m.take('s1'), null, 'the oldest went');
  t.ok(await m.take('s4'));
  t.ok(await m.take('s2'));
});

t.test('parsePendingLogin: anything but a whole login is no login', async (t) => {
  t.equal(parsePendingLogin(null), null);
  t.equal(parsePendingLogin('not json'), null);
  t.equal(parsePendingLogin('{"nonce":"n"}'), null);
});

t.test('safeReturnPath: same-origin paths only', async (t) => {
  for (const ok of ['/', '/?sid=abc', '/?sid=abc&role=viewer', '/dashboard#x']) t.equal(safeReturnPath(ok), ok, ok);
  t.equal(safeReturnPath('/a/../b?x=1'), '/b?x=1', 'normalised');
  for (const bad of [null, '', '//evil.example', '///evil.example', '/\\evil.example', '\\\\evil.example', 'https://evil.example/',
    'javascript:alert(1)', 'evil.example', '/\t/evil.example', '/\n', '/auth/login', '/auth/callback?x', `/${'a'.repeat(3000)}`]) {
    t.equal(safeReturnPath(bad), '/', JSON.stringify(bad));
  }
});

t.test('redirectUriFor: configured, else the public URL, else the Host', async (t) => {
  t.equal(redirectUriFor('https://a.example/cb', 'https://b.example', 'c:1'), 'https://a.example/cb');
  t.equal(redirectUriFor(undefined, 'https://b.example', 'c:1'), 'https://b.example/auth/callback');
  t.equal(redirectUriFor(undefined, undefined, 'c:1'), 'http://c:1/auth/callback');
});

t.test('cookies: parse and set', async (t) => {
  t.equal(cookieValue('a=1; sb_session=x.y.z; b=2', 'sb_session'), 'x.y.z');
  t.equal(cookieValue('sb_session_other=1', 'sb_session'), undefined);
  t.equal(cookieValue('', 'sb_session'), undefined);
  t.equal(setCookie('n', 'v', 60, { secure: true }), 'n=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure');
  t.equal(setCookie('n', '', 0, { secure: false, path: '/auth/callback' }), 'n=; Path=/auth/callback; HttpOnly; SameSite=Lax; Max-Age=0');
});

t.test('SessionCookies: round trip, expiry, the reserved names', async (t) => {
  const secret = 'unit-session-secret-0123456789abcdef';
  let now = 1_800_000_000_000;
  const cookies = new SessionCookies(secret, 3_600_000, () => now);
  const { value, expiresAt } = await cookies.issue({ name: 'alice', admin: false });
  t.equal(expiresAt, now + 3_600_000);
  t.strictSame(await cookies.verify(value), { name: 'alice', admin: false, credential: 'oidc', expiresAt });
  t.match(cookies.header(value, expiresAt, { secure: true }), /^sb_session=.+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600; Secure$/);
  const admin = await cookies.issue({ name: 'admin', admin: true });
  t.equal((await cookies.verify(admin.value)).admin, true);
  now += 3_600_000;
  await t.rejects(cookies.verify(value), new InvalidCredential('sign-in session expired'));
  await t.rejects(new SessionCookies('another-secret-0123456789abcdefghij', 3_600_000, () => now).verify(admin.value), InvalidCredential);
});
