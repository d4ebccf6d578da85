/**
 * The PostgreSQL archive read back, with real processes (redis-server, PostgreSQL, two
 * nodes): the transcript route from any node, attach {from} older than the Redis log
 * continuing from the archive (a `gap` only for what neither holds), who may read a
 * transcript, and paging of GET /v1/sessions.
 */
import t from 'tap';
import pg from 'pg';
import { SignJWT } from 'jose';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';

const SECRET = 'archive-test-jwt-secret-0123456789';
const jwt = (sub: string): Promise<string> => new SignJWT({ sub })
  .setProtectedHeader({ alg: 'HS256' })
  .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
  .sign(new TextEncoder().encode(SECRET));

let redis: RedisServer;
let postgres: PostgresServer;
let pool: pg.Pool;
const nodes: NodeProcess[] = [];

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  const env = { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url };
  // A tiny replay window, so most output is only in the archive; archived quickly.
  const flags = ['--replay-bytes', '1024', '--archive-interval-ms', '50', '--jwt-secret', SECRET];
  nodes.push(await spawnNode('a1', env, flags));
  nodes.push(await spawnNode('a2', env, flags));
  pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
  pool.on('error', () => {});
});

t.teardown(async () => {
  await pool?.end();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function archivedHead(sid: string): Promise<number> {
  const { rows } = await pool.query<{ end: string | null }>('SELECT max(off + octet_length(data)) AS end FROM session_output WHERE sid = $1', [sid]);
  return Number(rows[0]?.end ?? 0);
}

/** The whole transcript, page by page, following Switchboard-Next. */
async function transcript(via: NodeProcess, sid: string, token = TEST_TOKEN): Promise<{ bytes: Buffer; pages: number; offsets: number[] }> {
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let from = 0;
  let pages = 0;
  for (;;) {
    const res = await fetch(`${via.http}/v1/sessions/${sid}/transcript?from=${from}`, { headers: bearer(token) });
    if (res.status !== 200) throw new Error(`transcript answered ${res.status}: ${await res.text()}`);
    if (res.headers.get('content-type') !== 'application/octet-stream') throw new Error(`content-type ${res.headers.get('content-type')}`);
    const body = Buffer.from(await res.arrayBuffer());
    const off = Number(res.headers.get('switchboard-offset'));
    const next = Number(res.headers.get('switchboard-next'));
    const head = Number(res.headers.get('switchboard-head'));
    if (next !== off + body.length) throw new Error(`Next ${next} is not Offset ${off} + ${body.length}`);
    offsets.push(off);
    parts.push(body);
    pages++;
    if (next >= head || pages > 1000) break;
    from = next;
  }
  return { bytes: Buffer.concat(parts), pages, offsets };
}

/** What `seq 1 200000` prints on a terminal. */
const SEQ = Array.from({ length: 200_000 }, (_, i) => String(i + 1)).join('\r\n') + '\r\nfinished-42';

/**
 * Opens a shell, prints ~1.5 MB (more than one transcript page), waits until the archive has all of it. The opener may
 * itself fall behind the 1 KiB window before the archive has the bytes (and get a gap),
 * so the reference is the session's head, and the bytes are checked by content.
 */
async function noisySession(token = TEST_TOKEN): Promise<{ sid: string; head: number }> {
  const client = await TestClient.connect(nodes[0]!.url, { token });
  const { sid } = await client.request({ t: 'open', cmd: '/bin/sh' });
  const acked = client.next((f) => f.t === 'ack' && f.n === 1);
  client.send({ t: 'in', sid, data: Buffer.from('seq 1 200000; echo finished-$((6*7))\n'), n: 1 });
  await acked;
  await client.waitForOutput(sid, 'finished-42', 30_000);
  const last = client.frames.filter((f) => f.t === 'out' && f.sid === sid).at(-1)!;
  const head = (last.off as number) + (last.data as Uint8Array).length;
  // The archive is write-behind: wait until it caught up with what the client saw.
  await until(async () => (await archivedHead(sid)) >= head, 'archive caught up', 20_000);
  client.ws.close();
  return { sid, head };
}

t.test('transcript: the whole output from another node, in pages, archive then log', async (t) => {
  const { sid, head } = await noisySession();
  t.ok(head > 1024 * 1024, `the session printed ${head} bytes`);
  const got = await transcript(nodes[1]!, sid);
  t.ok(got.pages > 1, `in ${got.pages} pages`);
  t.equal(got.offsets[0], 0, 'from offset 0');
  t.ok(got.bytes.length >= head, 'at least up to the head the client saw');
  t.ok(got.bytes.includes(SEQ), 'every line of the output, once, in order');
  t.equal(got.bytes.toString().split('finished-42').length, 2, 'the last line once: nothing twice');

  const mid = await fetch(`${nodes[1]!.http}/v1/sessions/${sid}/transcript?from=100000`, { headers: bearer(TEST_TOKEN) });
  t.equal(mid.headers.get('switchboard-offset'), '100000', '?from= continues there');
  const midBytes = Buffer.from(await mid.arrayBuffer());
  t.ok(midBytes.length > 0 && midBytes.equals(got.bytes.subarray(100_000, 100_000 + midBytes.length)), 'with the same bytes');

  const bad = await fetch(`${nodes[1]!.http}/v1/sessions/${sid}/transcript?from=x`, { headers: bearer(TEST_TOKEN) });
  t.equal(bad.status, 400, 'a bad ?from= is refused');
});

t.test('attach {from: 0} below the Redis window replays the archive; a gap only for what neither holds', async (t) => {
  const { sid, head } = await noisySession();
  const whole = (await transcript(nodes[0]!, sid)).bytes;
  const client = await TestClient.connect(nodes[1]!.url);
  await client.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  const seen = await client.waitForBytes(sid, head, 30_000);
  t.notOk(client.frames.some((f) => f.t === 'gap'), 'no gap: the archive had them');
  t.ok(seen.subarray(0, head).equals(whole.subarray(0, head)), 'every byte from 0, in order');
  t.ok(seen.includes(SEQ), 'the whole output');
  client.ws.close();

  // Take the first 50,000 archived bytes away: only that range is a gap.
  const { rows } = await pool.query<{ off: string }>(
    'DELETE FROM session_output WHERE sid = $1 AND off < 50000 RETURNING off', [sid]);
  t.ok(rows.length > 0, 'archived rows removed');
  const { rows: first } = await pool.query<{ off: string }>('SELECT min(off) AS off FROM session_output WHERE sid = $1', [sid]);
  const resume = Number(first[0]!.off);
  const again = await TestClient.connect(nodes[1]!.url);
  await again.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  // `seen`: the gap can come in the same read as `attached`, before a `next` would listen.
  const gap = await again.seen((f) => f.t === 'gap' && f.sid === sid);
  t.strictSame([gap.from, gap.to], [0, resume], 'a gap for exactly the bytes neither holds');
  const rest = await again.waitForBytes(sid, head - resume, 30_000);
  t.ok(rest.subarray(0, head - resume).equals(whole.subarray(resume, head)), 'then the archive, then the log');
  t.equal(again.frames.filter((f) => f.t === 'gap').length, 1, 'one gap only');
  again.ws.close();

  const tr = await transcript(nodes[0]!, sid);
  t.equal(tr.offsets[0], resume, 'the transcript starts where the archive does (Switchboard-Offset)');
  t.ok(tr.bytes.subarray(0, head - resume).equals(whole.subarray(resume, head)), 'with the same bytes');
});

t.test('transcript: the owner and admins; anyone else gets 404', async (t) => {
  const [alice, bob] = await Promise.all([jwt('alice'), jwt('bob')]);
  const client = await TestClient.connect(nodes[0]!.url, { token: alice });
  const { sid } = await client.request({ t: 'open', cmd: '/bin/sh' });
  client.send({ t: 'in', sid, data: Buffer.from('echo alice-$((1+1))\n'), n: 1 });
  await client.waitForOutput(sid, 'alice-2');
  client.ws.close();
  for (const [who, token] of [['alice', alice], ['the admin', TEST_TOKEN]] as const) {
    const res = await fetch(`${nodes[1]!.http}/v1/sessions/${sid}/transcript`, { headers: bearer(token) });
    t.equal(res.status, 200, `${who} reads it`);
    t.match(Buffer.from(await res.arrayBuffer()).toString(), /alice-2/);
  }
  const res = await fetch(`${nodes[1]!.http}/v1/sessions/${sid}/transcript`, { headers: bearer(bob) });
  t.equal(res.status, 404, 'bob does not learn it exists');
  const none = await fetch(`${nodes[1]!.http}/v1/sessions/${sid.replace(/.$/, (c: string) => (c === 'a' ? 'b' : 'a'))}/transcript`, { headers: bearer(TEST_TOKEN) });
  t.equal(none.status, 404, 'an unknown session: 404');
});

t.test('GET /v1/sessions pages with ?limit and the `next` cursor', async (t) => {
  const carol = await jwt('carol');
  const client = await TestClient.connect(nodes[0]!.url, { token: carol });
  const opened: string[] = [];
  for (let i = 0; i < 5; i++) opened.push((await client.request({ t: 'open', cmd: '/bin/sh' })).sid);
  const seen: string[] = [];
  let next: string | null = null;
  let pages = 0;
  do {
    const res = await fetch(`${nodes[1]!.http}/v1/sessions?limit=2${next ? `&after=${next}` : ''}`, { headers: bearer(carol) });
    t.equal(res.status, 200);
    const body = (await res.json()) as { sessions: Array<{ sid: string; owner: string }>; next: string | null };
    t.ok(body.sessions.length <= 2, 'at most limit');
    t.ok(body.sessions.every((s) => s.owner === 'carol'), 'only her own');
    seen.push(...body.sessions.map((s) => s.sid));
    next = body.next;
    pages++;
  } while (next !== null && pages < 10);
  t.equal(pages, 3, '5 sessions in pages of 2');
  t.strictSame([...seen].sort(), [...opened].sort(), 'each once, none missed');
  t.equal(new Set(seen).size, seen.length);
  for (const q of ['limit=0', 'limit=1001', 'after=nonsense']) {
    const res = await fetch(`${nodes[1]!.http}/v1/sessions?${q}`, { headers: bearer(carol) });
    t.equal(res.status, 400, `?${q} refused`);
  }
  client.ws.close();
});
