/**
 * Terminals that outlive their node process, in a cluster: private redis-server and
 * PostgreSQL, an edge and two hosts as real processes, each host with its keeper.
 * kill -9 of a host, or a drain, while a shell prints: the host started again with the
 * same id adopts its kept shells (the other host leaves them alone during the grace),
 * and clients get every byte once. A keeper that dies ends its sessions with a reason.
 */
import t from 'tap';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';
import { isAlive, keeperPid, keeperSocketFor } from './helpers/keeper.js';
import { contiguous, openOn, sameShellCarriedOn, tickAfter, tickingShell } from './helpers/ticking.js';

const LEASE = ['--lease-ttl-ms', '1000'];
/** host1 asks the others to wait for it far longer than a restart takes. */
const HOST1 = [...LEASE, '--role', 'host', '--keeper-grace-ms', '60000'];

let redis: RedisServer;
let postgres: PostgresServer;
let env: Record<string, string>;
let edge: NodeProcess;
let host1: NodeProcess;
let host2: NodeProcess;
const others: NodeProcess[] = [];

async function liveNodes(): Promise<string[]> {
  const res = await fetch(`${edge.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  return ((await res.json()) as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id);
}

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  env = { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url };
  [edge, host1, host2] = await Promise.all([
    spawnNode('k-edge', env, [...LEASE, '--role', 'edge']),
    spawnNode('k-host1', env, HOST1),
    spawnNode('k-host2', env, [...LEASE, '--role', 'host']),
  ]);
  await until(async () => (await liveNodes()).length === 3, 'three nodes registered');
});

t.teardown(async () => {
  await Promise.all([edge, host1, host2, ...others].map((n) => n?.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

/** host1 again, same id and keeper socket; resolves once registered. */
async function restartHost1(): Promise<void> {
  host1 = await spawnNode('k-host1', env, HOST1);
  await until(async () => (await liveNodes()).includes('k-host1'), 'host1 registered again');
}

t.test('kill -9 of the host while the shell prints: restarted, it adopts the shell; nothing lost or repeated', async (t) => {
  const client = await TestClient.connect(edge.url);
  const shell = await tickingShell(client, (spec) => openOn(client, 'k-host1', spec));
  const viewer = await TestClient.connect(edge.url);
  await viewer.request({ t: 'attach', sid: shell.sid, from: 0, role: 'viewer' });
  await viewer.waitForOutput(shell.sid, 'tick2');
  const keeper = keeperPid(keeperSocketFor('k-host1'));
  const owner = client.next((f) => f.t === 'owner' && f.sid === shell.sid, 30_000);

  host1.signal('SIGKILL');
  await host1.exited;
  // A client that goes away now and resumes later with `from`.
  const seenByViewer = viewer.bytes(shell.sid);
  viewer.close();
  await restartHost1();
  t.equal(keeperPid(keeperSocketFor('k-host1')), keeper, 'the same keeper');
  const moved = await owner;
  t.equal(moved.node, 'k-host1', 'the restarted host owns the session again');
  t.ok(moved.epoch >= 2, `at a new epoch (${moved.epoch})`);
  await tickAfter(client, shell.sid, client.text(shell.sid));

  const resumed = await TestClient.connect(edge.url);
  await resumed.request({ t: 'attach', sid: shell.sid, from: seenByViewer.length, role: 'viewer' });
  await sameShellCarriedOn(t, client, shell, () => client.bytes(shell.sid), client.frames);
  t.ok(contiguous(client.frames, shell.sid), 'offsets contiguous from 0 across the restart');
  const whole = client.bytes(shell.sid);
  await resumed.waitForBytes(shell.sid, whole.length - seenByViewer.length);
  t.ok(Buffer.concat([seenByViewer, resumed.bytes(shell.sid)]).subarray(0, whole.length).equals(whole), 'a client resuming with `from` gets exactly the rest');
  t.notOk(host2.logs.some((l) => l.includes(shell.sid)), 'the other host left the session alone (the grace host1 asked for)');
  resumed.close();
  client.send({ t: 'in', sid: shell.sid, data: Buffer.from('exit\n') });
  await client.next((f) => f.t === 'exit' && f.sid === shell.sid);
  client.close();
});

t.test('drain (upgrade): the host hands its shells to the keeper; the next process adopts them', async (t) => {
  const client = await TestClient.connect(edge.url);
  const shell = await tickingShell(client, (spec) => openOn(client, 'k-host1', spec));
  const owner = client.next((f) => f.t === 'owner' && f.sid === shell.sid, 30_000);
  const res = await fetch(`${edge.http}/v1/nodes/k-host1/drain`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(res.status, 202);
  t.equal(await host1.exited, 0, 'the drained host exits cleanly');
  t.ok(host1.logs.some((l) => l.includes('terminals handed to the keeper')), 'its terminal went to the keeper, not SIGHUP');
  t.ok(isAlive(shell.pid), 'the shell runs on without a node');
  await restartHost1();
  const moved = await owner;
  t.equal(moved.node, 'k-host1');
  await tickAfter(client, shell.sid, client.text(shell.sid));
  await sameShellCarriedOn(t, client, shell, () => client.bytes(shell.sid), client.frames);
  t.ok(contiguous(client.frames, shell.sid));
  t.notOk(host2.logs.some((l) => l.includes(shell.sid)), 'the other host left it alone');
  client.send({ t: 'in', sid: shell.sid, data: Buffer.from('exit\n') });
  await client.next((f) => f.t === 'exit' && f.sid === shell.sid);
  client.close();
});

t.test('the keeper is killed: its sessions end with a reason, clients get exit; new terminals get a new keeper', async (t) => {
  const client = await TestClient.connect(edge.url);
  const sid = await openOn(client, 'k-host1', { cmd: '/bin/sh' });
  client.send({ t: 'in', sid, data: Buffer.from('echo "pid=$$ up"\n') });
  const pid = Number(/pid=(\d+) up/.exec(await client.waitForOutput(sid, /pid=\d+ up/))![1]);
  const socket = keeperSocketFor('k-host1');
  const keeper = keeperPid(socket)!;
  const exit = client.next((f) => f.t === 'exit' && f.sid === sid, 20_000);
  process.kill(keeper, 'SIGKILL');
  const e = await exit;
  t.equal(e.signal, 'SIGHUP', 'the shell lost its terminal');
  t.match(e.reason, /terminal keeper \(pid \d+\) ended/, 'the reason says what happened');
  await until(() => !isAlive(pid), 'the shell is gone');
  const res = await fetch(`${edge.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  const record = ((await res.json()) as { sessions: Array<{ sid: string; status: string }> }).sessions.find((s) => s.sid === sid);
  t.equal(record?.status, 'exited', 'recorded as ended');
  await until(() => keeperPid(socket) !== undefined && keeperPid(socket) !== keeper && isAlive(keeperPid(socket)!), 'a new keeper');
  const again = await openOn(client, 'k-host1', { cmd: '/bin/sh' });
  client.send({ t: 'in', sid: again, data: Buffer.from('echo fresh-$((3*3))\n') });
  await client.waitForOutput(again, 'fresh-9');
  t.pass('new terminals run in the new keeper');
  await client.request({ t: 'kill', sid: again, signal: 'SIGKILL' });
  client.close();
});
