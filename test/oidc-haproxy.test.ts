/**
 * OIDC sign-in across a cluster: two node processes sharing one private redis-server
 * and PostgreSQL, behind HAProxy round-robin (no stickiness), and a real provider
 * (oidc-provider, in this process). The sign-in begins on one node and its callback
 * lands on the other, which finds the pending login in Redis; the session cookie then
 * opens a WebSocket, through HAProxy, as the signed-in user.
 */
import t from 'tap';
import pg from 'pg';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { findBinary, haproxyConfig } from '../src/launcher/local-cluster.js';
import { Browser } from './helpers/browser.js';
import { TEST_TOKEN } from './helpers/node.js';
import { CLIENT_ID, CLIENT_SECRET, startProvider, type TestProvider } from './helpers/oidc-provider.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { freePort, startRedis, until, type RedisServer } from './helpers/redis.js';
import { atProvider, beginSignIn } from './helpers/sign-in.js';
import { refusal, TestClient } from './helpers/ws.js';

const SESSION_SECRET = 'cluster-session-secret-0123456789abcdef';
const JWT_SECRET = 'cluster-jwt-secret-0123456789abcdefgh';
/** HAProxy names the node that answered each response (a test-only header). */
const SERVED_BY = 'x-served-by';

let redis: RedisServer;
let postgres: PostgresServer;
let provider: TestProvider;
let nodes: NodeProcess[] = [];
let haproxy: ChildProcess | undefined;
let dir: string;
let gateway: string;
let db: pg.Pool;

t.before(async () => {
  const port = await freePort();
  gateway = `http://127.0.0.1:${port}`;
  [redis, postgres, provider] = await Promise.all([startRedis(), startPostgres(), startProvider([`${gateway}/auth/callback`])]);
  const env = {
    SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url, SWITCHBOARD_JWT_SECRET: JWT_SECRET,
    // Behind a proxy: the public URL gives the redirect URL every node names.
    SWITCHBOARD_PUBLIC_URL: gateway,
    SWITCHBOARD_OIDC_ISSUER: provider.issuer, SWITCHBOARD_OIDC_CLIENT_ID: CLIENT_ID, SWITCHBOARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    SWITCHBOARD_SESSION_SECRET: SESSION_SECRET,
  };
  // One first: it applies the migrations; the second finds them applied.
  nodes = [await spawnNode('oidc-a', env)];
  nodes.push(await spawnNode('oidc-b', env));
  dir = await mkdtemp(join(tmpdir(), 'sb-oidc-haproxy-'));
  const config = haproxyConfig(port, nodes.map((n) => ({ id: n.id, port: n.port }))) + `  http-response set-header ${SERVED_BY} %s\n`;
  await writeFile(join(dir, 'haproxy.cfg'), config);
  const binary = findBinary(process.env.HAPROXY ?? 'haproxy');
  if (!binary) throw new Error('haproxy is missing: install the Debian package haproxy, or set HAPROXY to its path');
  haproxy = spawn(binary, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: 'ignore' });
  // Both nodes in rotation: two answers from two different servers.
  await until(async () => {
    const served = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gateway}/readyz`).catch(() => undefined);
      if (res?.status !== 200) return false;
      served.add(res.headers.get(SERVED_BY) ?? '');
    }
    return served.size === 2;
  }, 'haproxy up with both nodes', 20_000);
  db = new pg.Pool({ connectionString: postgres.url, max: 2 });
  db.on('error', () => {});
});
t.teardown(async () => {
  haproxy?.kill('SIGKILL');
  await db?.end();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([redis?.stop(), postgres?.stop(), provider?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Round-robin over two servers alternates. After a request answered by `node`, probe
 * until a probe is answered by `node` too: the next request goes to the other one.
 */
async function nextGoesAwayFrom(browser: Browser, node: string): Promise<void> {
  for (let i = 0; i < 10; i++) if ((await browser.get(`${gateway}/healthz`)).header(SERVED_BY) === node) return;
  throw new Error(`HAProxy never sent a probe to ${node}`);
}

t.test('begun on one node, completed on the other; the cookie opens a socket as that user on any node', async (t) => {
  const browser = new Browser();
  const begun = await beginSignIn(browser, gateway, '/?sid=from-the-page');
  const beganOn = begun.header(SERVED_BY)!;
  t.ok(beganOn, `the sign-in began on ${beganOn}`);
  const callbackUrl = await atProvider(browser, begun.location!, 'alice');
  t.equal(callbackUrl.origin, gateway, 'the provider sends the browser back through the proxy');

  await nextGoesAwayFrom(browser, beganOn);
  const done = await browser.get(callbackUrl);
  const completedOn = done.header(SERVED_BY)!;
  t.not(completedOn, beganOn, `the callback landed on the other node (${completedOn})`);
  t.equal(done.status, 302, done.text);
  t.equal(done.header('location'), '/?sid=from-the-page');
  t.ok(done.setCookies.some((c) => c.startsWith('sb_session=')), 'the session cookie is set');
  t.notOk(done.setCookies.some((c) => /Secure/.test(c)), 'not Secure: the public URL is http');

  const replay = await browser.get(callbackUrl);
  t.equal(replay.status, 400, `the state was taken in Redis: a replay is refused (on ${replay.header(SERVED_BY)})`);

  const cookie = browser.cookieHeader(`${gateway}/v1/ws`);
  const ws = `${gateway.replace('http', 'ws')}/v1/ws`;
  const [first, second] = [await TestClient.connect(ws, { token: null, headers: { cookie } }), await TestClient.connect(ws, { token: null, headers: { cookie } })];
  const served = new Set([(await first.request({ t: 'ping' })).node, (await second.request({ t: 'ping' })).node]);
  t.equal(served.size, 2, `the cookie works on both nodes (${[...served].join(', ')})`);
  const { sid } = await first.request({ t: 'open', kind: 'echo' });
  const { rows } = await db.query<{ owner: string }>('SELECT owner FROM sessions WHERE sid = $1', [sid]);
  t.equal(rows[0]?.owner, 'alice', 'the session is owned by alice, in PostgreSQL');
  await second.request({ t: 'attach', sid, from: 0 });
  second.send({ t: 'in', sid, data: Buffer.from('across-nodes') });
  await first.waitForOutput(sid, 'across-nodes');

  const bobToken = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(JWT_SECRET));
  const bob = await TestClient.connect(ws, { token: bobToken });
  const bobs = await bob.request({ t: 'open', kind: 'echo' });
  t.equal(await refusal(first, { t: 'attach', sid: bobs.sid, from: 0 }), 'not_found', 'bob\'s session is not_found for alice');
  t.equal(await refusal(second, { t: 'kill', sid: bobs.sid }), 'not_found', 'on either node');

  const listed = await fetch(`${gateway}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  const owners = ((await listed.json()) as { sessions: Array<{ sid: string; owner: string }> }).sessions;
  t.strictSame(owners.filter((s) => s.owner === 'alice').map((s) => s.sid), [sid], 'alice owns exactly the session she opened');

  await until(async () => (await db.query(`SELECT 1 FROM audit_events WHERE type = 'login' AND principal = 'alice' AND detail->>'via' = 'oidc'`)).rows.length === 1, 'the sign-in audited in PostgreSQL');
  const logs = nodes.flatMap((n) => n.logs);
  t.notOk(logs.some((l) => l.includes(SESSION_SECRET) || l.includes(CLIENT_SECRET) || l.includes(cookie.split('=')[1]!)), 'no secret or cookie in any log line');
  for (const c of [first, second, bob]) c.close();
});
