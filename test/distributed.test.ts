/**
 * The guarantees of the design with real processes: private redis-server and
 * PostgreSQL, three nodes as child processes.
 */
import t from 'tap';
import pg from 'pg';
import { Redis } from 'ioredis';
import { sessionControl } from '../src/bus/channels.js';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';

let redis: RedisServer;
let postgres: PostgresServer;
const nodes: NodeProcess[] = [];
let env: Record<string, string>;

async function addNode(id: string, flags: string[] = []): Promise<NodeProcess> {
  const n = await spawnNode(id, env, ['--lease-ttl-ms', '1500', ...flags]);
  nodes.push(n);
  return n;
}

async function liveNodes(via: NodeProcess): Promise<string[]> {
  const res = await fetch(`${via.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  const body = (await res.json()) as { nodes: Array<{ id: string }> };
  return body.nodes.map((n) => n.id);
}

/** A new host node, registered and ready to be placed on. */
async function addHost(id: string): Promise<NodeProcess> {
  const n = await addNode(id, ['--role', 'host']);
  await until(async () => (await liveNodes(nodes[0]!)).includes(id), `${id} registered`);
  return n;
}

/** Placement is by load: open (killing the misses) until a session lands on `node`. */
async function openOn(client: TestClient, node: string, spec: Record<string, unknown>): Promise<string> {
  for (let i = 0; i < 40; i++) {
    const opened = await client.request({ t: 'open', ...spec });
    if (opened.node === node) return opened.sid;
    await client.request({ t: 'kill', sid: opened.sid, signal: 'SIGKILL' });
  }
  throw new Error(`placement never chose ${node}`);
}

async function ownerOf(via: NodeProcess, sid: string): Promise<string | undefined> {
  const res = await fetch(`${via.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  const body = (await res.json()) as { sessions: Array<{ sid: string; node: string }> };
  return body.sessions.find((s) => s.sid === sid)?.node;
}

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  env = { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url };
  await Promise.all([addNode('n1'), addNode('n2'), addNode('n3')]);
  await until(async () => (await liveNodes(nodes[0]!)).length === 3, 'three nodes in the registry');
});

t.teardown(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

t.test('open on node 1, attach on node 2, type on node 3: same session, same bytes', async (t) => {
  const [a, b, c] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const opener = await TestClient.connect(a.url);
  const { sid } = await opener.request({ t: 'open', cmd: '/bin/sh' });
  const viewer = await TestClient.connect(b.url);
  await viewer.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  const typist = await TestClient.connect(c.url);
  await typist.request({ t: 'attach', sid, from: 0 });
  const acked = typist.next((f) => f.t === 'ack' && f.n === 1);
  typist.send({ t: 'in', sid, data: Buffer.from('echo cross-$((40+2))\n'), n: 1 });
  await acked;
  for (const client of [opener, viewer, typist]) await client.waitForOutput(sid, 'cross-42');
  const head = Math.min(opener.bytes(sid).length, viewer.bytes(sid).length, typist.bytes(sid).length);
  t.same(viewer.bytes(sid).subarray(0, head), opener.bytes(sid).subarray(0, head), 'node 2 sees the bytes node 1 sees');
  t.same(typist.bytes(sid).subarray(0, head), opener.bytes(sid).subarray(0, head), 'node 3 too');
  const exit = viewer.next((f) => f.t === 'exit');
  await typist.request({ t: 'kill', sid });
  t.equal((await exit).signal, 'SIGHUP', 'a kill from node 3 reaches the owner and every client');
  for (const client of [opener, viewer, typist]) client.close();
});

t.test('a burst of input frames reaches the owner in order, batched behind the publish in flight', async (t) => {
  const [a] = nodes as [NodeProcess];
  const client = await TestClient.connect(a.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  // Each publish on the session's control channel reaches this subscriber too. (Not
  // MONITOR: ioredis can take the first monitored line for a reply when it arrives with
  // MONITOR's own OK, and fails with "Command queue state error".)
  const listener = new Redis(redis.url);
  t.teardown(() => listener.disconnect());
  let publishes = 0;
  listener.on('messageBuffer', (channel: Buffer) => {
    if (channel.toString() === sessionControl(sid)) publishes++;
  });
  await listener.subscribe(sessionControl(sid));
  const frames = Array.from({ length: 200 }, (_, i) => `${i}|`);
  for (const data of frames) client.send({ t: 'in', sid, data: Buffer.from(data) });
  await client.waitForOutput(sid, '199|');
  t.equal(client.text(sid), frames.join(''), '200 frames, echoed in the order sent');
  t.ok(publishes > 0 && publishes < frames.length / 4, `in ${publishes} publishes, not one per frame`);
  client.close();
});

t.test('kill -9 of the edge: resume through another node, zero bytes lost or repeated', async (t) => {
  const edge = await addNode('edge-victim', ['--role', 'edge']);
  await until(async () => (await liveNodes(nodes[0]!)).includes('edge-victim'), 'edge registered');
  const client = await TestClient.connect(edge.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  const sent: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const data = Buffer.from(`k${i};`);
    sent.push(data);
    client.send({ t: 'in', sid, data });
  }
  await client.waitForOutput(sid, 'k99;');
  edge.signal('SIGKILL');
  await client.closed;
  const seen = client.bytes(sid).length;
  const resumed = await TestClient.connect(nodes[1]!.url);
  await resumed.request({ t: 'attach', sid, from: seen });
  for (let i = 200; i < 300; i++) {
    const data = Buffer.from(`k${i};`);
    sent.push(data);
    resumed.send({ t: 'in', sid, data });
  }
  await resumed.waitForOutput(sid, 'k299;');
  const whole = Buffer.concat([client.bytes(sid), resumed.bytes(sid)]);
  // Input sent into the dying edge may not all have reached the owner; what did is in
  // order, exactly once.
  const expected = Buffer.concat(sent).toString();
  t.ok(expected.endsWith(resumed.text(sid).slice(-100)), 'the tail is the input');
  t.same(whole.toString().match(/k(\d+);/g)!.map((k) => Number(k.slice(1, -1))).filter((n, i, all) => i > 0 && n <= all[i - 1]!), [], 'strictly increasing: no duplicates, no reordering');
  t.same(whole.subarray(0, seen), client.bytes(sid));
  resumed.close();
});

t.test('kill -9 of the owner of an echo session: continued elsewhere with the same offsets', async (t) => {
  const owner = await addHost('owner-victim');
  const client = await TestClient.connect(nodes[0]!.url);
  const sid = await openOn(client, 'owner-victim', { kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('before|') });
  await client.waitForOutput(sid, 'before|');
  const ownerFrame = client.next((f) => f.t === 'owner' && f.sid === sid, 20_000);
  owner.signal('SIGKILL');
  const moved = await ownerFrame;
  t.not(moved.node, 'owner-victim', 'another node owns it now');
  t.ok(moved.epoch >= 2, 'with a new epoch');
  client.send({ t: 'in', sid, data: Buffer.from('after|') });
  await client.waitForOutput(sid, 'before|after|');
  const outs = client.frames.filter((f) => f.t === 'out' && f.sid === sid);
  t.same(outs.map((f) => f.off), [0, 7], 'offsets continue where they were');
  client.close();
});

t.test('input typed while a session has no owner is held and delivered after the takeover, in order', async (t) => {
  const owner = await addHost('owner-victim-2');
  const client = await TestClient.connect(nodes[0]!.url);
  const sid = await openOn(client, 'owner-victim-2', { kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('a|') });
  await client.waitForOutput(sid, 'a|');
  const probe = new Redis(redis.url);
  t.teardown(() => probe.disconnect());
  const subscribers = async (): Promise<number> => Number(((await probe.pubsub('NUMSUB', sessionControl(sid))) as [string, number])[1]);
  owner.signal('SIGKILL');
  // Its connection is gone at once; a takeover waits for its node lease to lapse.
  await until(async () => (await subscribers()) === 0, 'the dead owner is no longer subscribed');
  client.send({ t: 'in', sid, data: Buffer.from('typed|') });
  client.send({ t: 'in', sid, data: Buffer.from('while|') });
  client.send({ t: 'in', sid, data: Buffer.from('down|') });
  const owned = await client.seen((f) => f.t === 'owner' && f.sid === sid, 20_000);
  t.not(owned.node, 'owner-victim-2');
  client.send({ t: 'in', sid, data: Buffer.from('after|') });
  await client.waitForOutput(sid, 'after|');
  t.equal(client.text(sid), 'a|typed|while|down|after|', 'nothing typed during the outage was lost, and the order held');
  t.same(client.frames.filter((f) => f.t === 'error' && f.sid === sid), [], 'no error');
  client.close();
});

t.test('a paused owner past its lease: its late writes are refused', async (t) => {
  const owner = await addHost('sleeper');
  const client = await TestClient.connect(nodes[0]!.url);
  const sid = await openOn(client, 'sleeper', { kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('a|') });
  await client.waitForOutput(sid, 'a|');
  const ownerFrame = client.next((f) => f.t === 'owner' && f.sid === sid, 20_000);
  owner.signal('SIGSTOP');
  await ownerFrame;
  // Both the new owner and the frozen one are subscribed to this input; only one may
  // write its echo.
  client.send({ t: 'in', sid, data: Buffer.from('b|') });
  await client.waitForOutput(sid, 'a|b|');
  owner.signal('SIGCONT');
  await until(() => owner.logs.some((l) => /fenc/.test(l)), 'the old owner fences itself', 15_000);
  client.send({ t: 'in', sid, data: Buffer.from('c|') });
  await client.waitForOutput(sid, 'a|b|c|');
  const replay = await TestClient.connect(nodes[1]!.url);
  await replay.request({ t: 'attach', sid, from: 0 });
  await replay.waitForBytes(sid, 6);
  t.equal(replay.text(sid), 'a|b|c|', 'the log holds each echo exactly once');
  t.equal(client.text(sid), 'a|b|c|');
  replay.close();
  client.close();
  await owner.stop();
});

t.test('Redis restart mid-session: readyz says 503, then the session resumes', async (t) => {
  const client = await TestClient.connect(nodes[0]!.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('one|') });
  await client.waitForOutput(sid, 'one|');
  // The write-behind archive has the bytes before Redis (which keeps nothing) dies.
  const db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  await until(async () => (await db.query('SELECT 1 FROM session_output WHERE sid = $1', [sid])).rowCount! > 0, 'archived');
  await db.end();
  await redis.kill('SIGKILL');
  await until(async () => (await fetch(`${nodes[0]!.http}/readyz`)).status === 503, 'readyz 503');
  t.equal((await fetch(`${nodes[0]!.http}/healthz`)).status, 200, 'the node stays up');
  await redis.restart();
  await until(async () => (await fetch(`${nodes[0]!.http}/readyz`)).status === 200, 'readyz 200 again', 20_000);
  const fresh = await TestClient.connect(nodes[0]!.url);
  const opened = await fresh.request({ t: 'open', kind: 'echo' });
  fresh.send({ t: 'in', sid: opened.sid, data: Buffer.from('new|') });
  await fresh.waitForOutput(opened.sid, 'new|');
  t.pass('new sessions work after the restart');
  // Its owner reclaims the owner record Redis lost (a new epoch, announced with `owner`;
  // pub/sub may not bring that to an edge still resubscribing, so it is not awaited) and
  // the session continues after the archived bytes: offsets never go backwards. Input
  // refused meanwhile (`unavailable`, temporary) is sent again, as clients do.
  for (let attempt = 0; attempt < 20 && !client.text(sid).includes('one|two|'); attempt++) {
    const refused = client.next((f) => f.t === 'error' && f.sid === sid, 20_000).then(() => 'refused', () => 'timeout');
    client.send({ t: 'in', sid, data: Buffer.from('two|') });
    const echoed = client.waitForOutput(sid, 'one|two|', 20_000).then(() => 'echoed', () => 'timeout');
    if ((await Promise.race([echoed, refused])) === 'timeout') break;
  }
  t.equal(client.text(sid), 'one|two|', 'echoed once, after the archived bytes', { frames: client.frames.filter((f) => f.sid === sid).map((f) => ({ ...f, data: f.data ? Buffer.from(f.data).toString() : undefined })) });
  const last = client.frames.filter((f) => f.t === 'out' && f.sid === sid).at(-1)!;
  t.equal(last.off, 4, 'the session resumed at its old head');
  fresh.close();
  client.close();
});

t.test('PostgreSQL restart: the node stays up and recovers', async (t) => {
  await postgres.kill('SIGKILL');
  await until(async () => {
    const res = await fetch(`${nodes[0]!.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    return res.status >= 500;
  }, 'store errors surface');
  t.equal((await fetch(`${nodes[0]!.http}/healthz`)).status, 200);
  await postgres.restart();
  await until(async () => {
    const res = await fetch(`${nodes[0]!.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    return res.status === 200;
  }, 'store back', 20_000);
  const client = await TestClient.connect(nodes[1]!.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('pg-ok') });
  await client.waitForOutput(sid, 'pg-ok');
  t.equal(await ownerOf(nodes[0]!, sid) !== undefined, true, 'the new session is recorded');
  client.close();
});

t.test('drain: bye to clients, sessions move, the node exits', async (t) => {
  const drained = await addNode('drainee');
  await until(async () => (await liveNodes(nodes[0]!)).includes('drainee'), 'registered');
  const client = await TestClient.connect(drained.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  const bye = client.next((f) => f.t === 'bye');
  const res = await fetch(`${nodes[0]!.http}/v1/nodes/drainee/drain`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(res.status, 202);
  const b = await bye;
  t.equal(b.reason, 'draining');
  t.ok(b.retryMs > 0);
  t.equal(await drained.exited, 0, 'the drained node exits cleanly');
  await until(async () => (await ownerOf(nodes[1]!, sid)) !== 'drainee', 'another node took the session', 20_000);
  const back = await TestClient.connect(nodes[1]!.url);
  await back.request({ t: 'attach', sid, from: 0 });
  back.send({ t: 'in', sid, data: Buffer.from('moved') });
  await back.waitForOutput(sid, 'moved', 20_000);
  t.not(await ownerOf(nodes[1]!, sid), 'drainee', 'the session lives on another node');
  back.close();
});

t.test('pty sessions whose owner dies follow their policy: lost or restart', async (t) => {
  const victim = await addHost('pty-victim');
  const client = await TestClient.connect(nodes[0]!.url);
  const lost = await openOn(client, 'pty-victim', { cmd: '/bin/sh' });
  const restarted = await openOn(client, 'pty-victim', { cmd: '/bin/sh', cwd: '/tmp', onLoss: 'restart' });
  client.send({ t: 'in', sid: restarted, data: Buffer.from('echo before-$((1+1))\n') });
  await client.waitForOutput(restarted, 'before-2');
  const lostExit = client.next((f) => f.t === 'exit' && f.sid === lost, 20_000);
  const newOwner = client.next((f) => f.t === 'owner' && f.sid === restarted, 20_000);
  victim.signal('SIGKILL');
  const exit = await lostExit;
  t.equal(exit.signal, 'SIGKILL');
  t.match(exit.reason, /pty-victim/, 'the reason names the lost node');
  const owner = await newOwner;
  t.not(owner.node, 'pty-victim');
  await client.waitForOutput(restarted, /new shell was started/);
  client.send({ t: 'in', sid: restarted, data: Buffer.from('pwd; echo after-$((2+2))\n') });
  await client.waitForOutput(restarted, 'after-4');
  t.match(client.text(restarted), /\/tmp/, 'the new shell runs in the same cwd');
  const outs = client.frames.filter((f) => f.t === 'out' && f.sid === restarted);
  let expected = 0;
  for (const f of outs) {
    t.equal(f.off, expected, 'offsets continue without a hole or overlap');
    expected = f.off + f.data.length;
  }
  await client.request({ t: 'kill', sid: restarted, signal: 'SIGKILL' });
  client.close();
});

t.test('a node restarted with the same id reconciles the sessions it owned', async (t) => {
  // A cluster of its own (Redis database 1, a fresh PostgreSQL database), so no other
  // node can take the session over: only the restarted node can.
  const soloEnv = { SWITCHBOARD_REDIS_URL: `${redis.url}/1`, SWITCHBOARD_DATABASE_URL: await postgres.createDatabase() };
  const first = await spawnNode('phoenix', soloEnv, ['--lease-ttl-ms', '1000']);
  const client = await TestClient.connect(first.url);
  const { sid } = await client.request({ t: 'open', kind: 'echo' });
  client.send({ t: 'in', sid, data: Buffer.from('first-life|') });
  await client.waitForOutput(sid, 'first-life|');
  first.signal('SIGKILL');
  await first.exited;
  const second = await spawnNode('phoenix', soloEnv, ['--lease-ttl-ms', '1000']);
  t.teardown(() => second.stop());
  const again = await TestClient.connect(second.url);
  await until(async () => {
    const res = await fetch(`${second.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    const body = (await res.json()) as { sessions: Array<{ sid: string; status: string }> };
    return body.sessions.some((s) => s.sid === sid && s.status === 'running') && second.logs.some((l) => l.includes('took over session'));
  }, 'the restarted node adopts its session', 20_000);
  await again.request({ t: 'attach', sid, from: 0 });
  again.send({ t: 'in', sid, data: Buffer.from('second-life|') });
  await again.waitForOutput(sid, 'first-life|second-life|');
  t.pass('the session continues at the same offsets after the restart');
  again.close();
});
