/**
 * Principals across nodes: two real node processes sharing one private redis-server and
 * one PostgreSQL. Owners are persisted, a link revoked on one node is refused on the
 * other, and each per-principal limit is held once for the cluster (two nodes do not
 * allow twice the rate).
 */
import t from 'tap';
import pg from 'pg';
import { SignJWT } from 'jose';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { upgradeStatus } from './helpers/http.js';
import { refusal, TestClient, type Frame } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';

const SECRET = 'distributed-principals-secret-0123456789';
const INPUT_RATE = 4096;

function jwt(sub: string): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(SECRET));
}

let redis: RedisServer;
let postgres: PostgresServer;
let db: pg.Pool;
let a: NodeProcess;
let b: NodeProcess;

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  const env = {
    SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url, SWITCHBOARD_JWT_SECRET: SECRET,
    SWITCHBOARD_OPEN_RATE: '3', SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL: '2', SWITCHBOARD_INPUT_RATE: String(INPUT_RATE),
  };
  // One first: it applies the migrations; the second finds them applied.
  a = await spawnNode('pa', env);
  b = await spawnNode('pb', env);
  db = new pg.Pool({ connectionString: postgres.url, max: 2 });
  db.on('error', () => {});
  await until(async () => {
    const res = await fetch(`${a.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    return ((await res.json()) as { nodes: unknown[] }).nodes.length === 2;
  }, 'both nodes registered');
});

t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await db?.end();
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

t.test('the owner is the JWT sub, persisted, and scopes every node', async (t) => {
  const alice = await TestClient.connect(a.url, { token: await jwt('alice') });
  const { sid } = await alice.request({ t: 'open', kind: 'echo' });
  const { rows } = await db.query<{ owner: string }>('SELECT owner FROM sessions WHERE sid = $1', [sid]);
  t.equal(rows[0]?.owner, 'alice', 'sessions.owner in PostgreSQL');
  const listed = await fetch(`${b.http}/v1/sessions`, { headers: { authorization: `Bearer ${await jwt('alice')}` } });
  t.ok(((await listed.json()) as { sessions: Array<{ sid: string; owner: string }> }).sessions.some((s) => s.sid === sid && s.owner === 'alice'), 'listed by her on the other node');
  const bob = await TestClient.connect(b.url, { token: await jwt('bob') });
  t.equal(await refusal(bob, { t: 'attach', sid, role: 'viewer' }), 'not_found', 'another user on the other node: not_found');
  t.equal(await refusal(bob, { t: 'kill', sid }), 'not_found');
  await alice.request({ t: 'kill', sid });
  alice.close();
  bob.close();

  await until(async () => {
    const r = await db.query<{ type: string }>(`SELECT type FROM session_events WHERE sid = $1 AND type LIKE 'audit.%'`, [sid]);
    return r.rows.length >= 2;
  }, 'audit rows in session_events');
  const events = await db.query<{ type: string; detail: { principal: string; addr: string } }>(
    `SELECT type, detail FROM session_events WHERE sid = $1 AND type LIKE 'audit.%' ORDER BY id`, [sid]);
  t.strictSame(events.rows.map((r) => [r.type, r.detail.principal, r.detail.addr]), [['audit.open', 'alice', '127.0.0.1'], ['audit.kill', 'alice', '127.0.0.1']]);
  await until(async () => (await db.query(`SELECT 1 FROM audit_events WHERE type = 'login' AND principal = 'bob'`)).rows.length > 0, 'bob\'s login in audit_events');
  const lines = [...a.logs, ...b.logs];
  t.ok(lines.some((l) => l.includes('"msg":"audit"') && l.includes('"event":"open"') && l.includes(sid)), 'and as a JSON log line');
  t.notOk(lines.some((l) => l.includes(TEST_TOKEN) || l.includes(SECRET)), 'no secret in any log line');
});

t.test('a link revoked on one node is refused on the other, and its sockets there close', async (t) => {
  const owner = await TestClient.connect(a.url, { token: await jwt('carol') });
  const { sid } = await owner.request({ t: 'open', kind: 'echo' });
  const minted = await fetch(`${a.http}/v1/sessions/${sid}/links`, {
    method: 'POST', headers: { authorization: `Bearer ${await jwt('carol')}`, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'viewer', ttlSeconds: 600 }),
  });
  t.equal(minted.status, 201);
  const link = (await minted.json()) as { id: string; token: string };
  const viewer = await TestClient.connect(b.url, { token: link.token });
  await viewer.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  owner.send({ t: 'in', sid, data: Buffer.from('across-nodes') });
  await viewer.waitForOutput(sid, 'across-nodes');

  const revoked = await fetch(`${a.http}/v1/sessions/${sid}/links/${link.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${await jwt('carol')}` } });
  t.equal(revoked.status, 200, 'revoked through node A');
  t.equal((await viewer.closed).code, 1008, 'the socket on node B closes');
  t.equal((await upgradeStatus(b.port, { headers: { authorization: `Bearer ${link.token}` } })).status, 401, 'node B refuses the link');
  t.equal((await upgradeStatus(a.port, { headers: { authorization: `Bearer ${link.token}` } })).status, 401, 'so does node A');
  const { rows } = await db.query<{ revoked_at: Date | null }>('SELECT revoked_at FROM share_links WHERE id = $1', [link.id]);
  t.ok(rows[0]?.revoked_at instanceof Date, 'revocation is a row in PostgreSQL');
  await owner.request({ t: 'kill', sid });
  owner.close();
});

t.test('opens a minute and sessions per principal: one limit for both nodes', async (t) => {
  const token = await jwt('dave');
  const onA = await TestClient.connect(a.url, { token });
  const onB = await TestClient.connect(b.url, { token });
  const first = await onA.request({ t: 'open', kind: 'echo' });
  await onB.request({ t: 'open', kind: 'echo' });
  t.equal(await refusal(onA, { t: 'open', kind: 'echo' }), 'rate_limited', 'two sessions running (one opened on each node): the third is refused');
  t.equal(await refusal(onB, { t: 'open', kind: 'echo' }), 'rate_limited', 'on either node');
  await onA.request({ t: 'kill', sid: first.sid });
  await until(async () => (await db.query(`SELECT 1 FROM sessions WHERE sid = $1 AND status = 'exited'`, [first.sid])).rows.length === 1, 'the session ended');
  await onB.request({ t: 'open', kind: 'echo' });
  t.pass('room again after a kill');
  // Three opens so far (one through A, two through B; the refusals for the session count
  // took none): the fourth, through A, is over SWITCHBOARD_OPEN_RATE=3.
  const sessions = await db.query<{ sid: string }>(`SELECT sid FROM sessions WHERE owner = 'dave' AND status = 'running'`);
  await onA.request({ t: 'kill', sid: sessions.rows[0]!.sid });
  await until(async () => (await db.query(`SELECT 1 FROM sessions WHERE owner = 'dave' AND status = 'running'`)).rows.length === 1, 'one session left');
  const over = onA.next((f) => f.t === 'error' && f.code === 'rate_limited');
  t.equal(await refusal(onA, { t: 'open', kind: 'echo' }), 'rate_limited', 'the fourth open in a minute, on node A after opens on both');
  t.match((await over).msg, /SWITCHBOARD_OPEN_RATE/, 'refused for the open rate, not the session count');
  onA.close();
  onB.close();
});

t.test('concurrent opens through both nodes cannot overshoot the session cap', async (t) => {
  const token = await jwt('racer');
  const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => TestClient.connect((i % 2 ? b : a).url, { token })));
  const answers = await Promise.all(clients.map((c) => refusal(c, { t: 'open', kind: 'echo' })));
  t.equal(answers.filter((x) => x === undefined).length, 2, 'exactly SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL=2 opened');
  t.ok(answers.filter((x) => x !== undefined).every((x) => x === 'rate_limited'), 'the rest refused rate_limited');
  const { rows } = await db.query(`SELECT sid FROM sessions WHERE owner = 'racer' AND status IN ('starting', 'running')`);
  t.equal(rows.length, 2, 'two sessions in PostgreSQL, not more');
  const left = await db.query(`SELECT 1 FROM session_reservations WHERE owner = 'racer'`);
  t.equal(left.rows.length, 0, 'every reservation was released before its open was answered');
  for (const c of clients) c.close();
});

t.test('input bytes a second: one bucket for both nodes', async (t) => {
  const token = await jwt('erin');
  const onA = await TestClient.connect(a.url, { token });
  const onB = await TestClient.connect(b.url, { token });
  const { sid } = await onA.request({ t: 'open', kind: 'echo' });
  await onB.request({ t: 'attach', sid, from: 0 });
  const FRAMES = 32;
  const FRAME = 1024;
  let accepted = 0;
  let refused = 0;
  const refusedOn = new Set<string>();
  const answered = (c: TestClient, name: string, n: number): Promise<void> =>
    c.next((f) => (f.t === 'ack' && f.n === n) || (f.t === 'error' && f.sid === sid && f.code === 'rate_limited')).then((f) => {
      if (f.t === 'ack') accepted++;
      else {
        refused++;
        refusedOn.add(name);
      }
    });
  const started = Date.now();
  // Alternate nodes, frames of 1 KiB, each answered with an ack (applied) or rate_limited
  // (dropped) before the next goes: 32 KiB offered at the rate of the round trips.
  for (let n = 1; n <= FRAMES; n++) {
    const [c, name] = n % 2 === 0 ? [onB, 'B'] as const : [onA, 'A'] as const;
    const done = answered(c, name, n);
    c.send({ t: 'in', sid, data: Buffer.alloc(FRAME, 0x61), n });
    await done;
  }
  const elapsedS = (Date.now() - started) / 1000;
  t.equal(accepted + refused, FRAMES, 'every frame answered');
  // One shared bucket: a burst of one second's rate, then the rate. Each node counting
  // on its own would have let through twice that.
  const bound = INPUT_RATE * (1 + elapsedS);
  t.ok(accepted * FRAME <= bound, `accepted ${accepted * FRAME} bytes in ${elapsedS.toFixed(2)} s, at most ${Math.floor(bound)} for one ${INPUT_RATE} B/s bucket`);
  t.ok(accepted * FRAME >= INPUT_RATE, 'the first second\'s worth went through');
  t.strictSame([...refusedOn].sort(), ['A', 'B'], 'both nodes refused input once the shared bucket was empty');
  await onA.request({ t: 'kill', sid });
  onA.close();
  onB.close();
});
