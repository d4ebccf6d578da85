/**
 * Who gets a kept terminal when more than one node could: the owner record's epoch
 * decides. A node that comes back after another took its session over ends its kept
 * copy; two nodes sharing a dead node's keeper race to adopt it and exactly one wins.
 * Real processes: redis-server, PostgreSQL, an edge, hosts, keepers.
 */
import t from 'tap';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';
import { isAlive, KeeperProbe, keeperSocketFor } from './helpers/keeper.js';
import { contiguous, openOn, sameShellCarriedOn, tickAfter, tickingShell } from './helpers/ticking.js';

const LEASE = ['--lease-ttl-ms', '1000'];

let redis: RedisServer;
let postgres: PostgresServer;
let env: Record<string, string>;
let edge: NodeProcess;
const nodes: NodeProcess[] = [];

async function liveNodes(): Promise<string[]> {
  const res = await fetch(`${edge.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  return ((await res.json()) as { nodes: Array<{ id: string }> }).nodes.map((n) => n.id);
}

async function host(id: string, flags: string[] = [], extraEnv: Record<string, string> = {}): Promise<NodeProcess> {
  const n = await spawnNode(id, { ...env, ...extraEnv }, [...LEASE, '--role', 'host', ...flags]);
  nodes.push(n);
  await until(async () => (await liveNodes()).includes(id), `${id} registered`);
  return n;
}

async function ownerOf(sid: string): Promise<string | undefined> {
  const res = await fetch(`${edge.http}/v1/sessions`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  return ((await res.json()) as { sessions: Array<{ sid: string; node: string }> }).sessions.find((s) => s.sid === sid)?.node;
}

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  env = { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url };
  edge = await spawnNode('r-edge', env, [...LEASE, '--role', 'edge']);
});

t.teardown(async () => {
  await Promise.all([edge, ...nodes].map((n) => n?.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

t.test('another node took the session over while its node was away: the higher epoch wins, the kept shell is ended', async (t) => {
  // r-a asks for no grace: r-b takes its sessions over as soon as its lease lapses.
  const a = await host('r-a', ['--keeper-grace-ms', '0']);
  const b = await host('r-b');
  const client = await TestClient.connect(edge.url);
  const sid = await openOn(client, 'r-a', { cmd: '/bin/sh', onLoss: 'restart' });
  client.send({ t: 'in', sid, data: Buffer.from('echo "first=$$"\n') });
  const keptPid = Number(/first=(\d+)/.exec(await client.waitForOutput(sid, /first=\d+/))![1]);
  const owner = client.next((f) => f.t === 'owner' && f.sid === sid, 30_000);
  a.signal('SIGKILL');
  await a.exited;
  t.equal((await owner).node, 'r-b', 'r-b took the session over');
  await client.waitForOutput(sid, /new shell was started/);
  client.send({ t: 'in', sid, data: Buffer.from('echo "second=$$"\n') });
  const newPid = Number(/second=(\d+)/.exec(await client.waitForOutput(sid, /second=\d+/))![1]);
  t.not(newPid, keptPid, 'a new shell on r-b');
  t.ok(isAlive(keptPid), "meanwhile r-a's keeper still holds the old shell");

  const again = await host('r-a', ['--keeper-grace-ms', '0']);
  await until(() => !isAlive(keptPid), 'the kept copy is ended once r-a is back');
  // The keeper ends the shell before it replies, and r-a logs on the reply: wait for the line.
  await until(() => again.logs.some((l) => l.includes('kept terminal ended: another node took the session over') && l.includes(sid)), 'r-a says why');
  t.pass('r-a says why');
  const probe = await KeeperProbe.connect(keeperSocketFor('r-a'));
  t.equal(await probe.session(sid), undefined, "r-a's keeper holds nothing of it");
  probe.close();
  t.equal(await ownerOf(sid), 'r-b', 'the session stays on r-b');
  client.send({ t: 'in', sid, data: Buffer.from('echo "still=$$"\n') });
  await client.waitForOutput(sid, `still=${newPid}`);
  t.same(client.frames.filter((f) => f.t === 'owner' && f.sid === sid).map((f) => f.node), ['r-b'], 'no other owner since');
  await client.request({ t: 'kill', sid, signal: 'SIGKILL' });
  client.close();
  await Promise.all([again.stop(), b.stop()]);
});

t.test('two nodes sharing a dead node\'s keeper race to adopt its terminal: exactly one wins', async (t) => {
  // r-p asks the cluster to wait for it: only the keeper's other clients may adopt now.
  await host('r-p', ['--keeper-grace-ms', '60000']);
  const client = await TestClient.connect(edge.url);
  const shell = await tickingShell(client, (spec) => openOn(client, 'r-p', spec));
  const owner = client.next((f) => f.t === 'owner' && f.sid === shell.sid, 30_000);
  nodes.find((n) => n.id === 'r-p')!.signal('SIGKILL');
  await nodes.find((n) => n.id === 'r-p')!.exited;

  // Two node processes on the same machine, using r-p's keeper (never starting one).
  const shared = { SWITCHBOARD_KEEPER: 'external', SWITCHBOARD_KEEPER_SOCKET: keeperSocketFor('r-p') };
  const [c, d] = await Promise.all([host('r-c', [], shared), host('r-d', [], shared)]);
  const winner = (await owner).node;
  t.ok(winner === 'r-c' || winner === 'r-d', `one of them owns it (${winner})`);
  await tickAfter(client, shell.sid, client.text(shell.sid));
  await sameShellCarriedOn(t, client, shell, () => client.bytes(shell.sid), client.frames);
  t.ok(contiguous(client.frames, shell.sid), 'offsets contiguous from 0');
  const adopted = [c, d].filter((n) => n.logs.some((l) => l.includes('adopted a kept terminal') && l.includes(shell.sid)));
  t.same(adopted.map((n) => n.id), [winner], 'exactly one adopted it');
  const lost = [c, d].filter((n) => n.logs.some((l) => l.includes('another node adopted the kept terminal first') && l.includes(shell.sid)));
  t.comment(lost.length > 0 ? `${lost[0]!.id} tried too and lost the compare-and-set` : 'the loser saw the winner before it tried');
  t.same(client.frames.filter((f) => f.t === 'owner' && f.sid === shell.sid).map((f) => f.node), [winner], 'one owner frame: nobody took it from the winner');
  const probe = await KeeperProbe.connect(keeperSocketFor('r-p'));
  t.equal((await probe.session(shell.sid))?.attached, winner, 'the keeper has it attached to the winner');
  probe.close();
  t.equal(await ownerOf(shell.sid), winner);
  client.send({ t: 'in', sid: shell.sid, data: Buffer.from('exit\n') });
  await client.next((f) => f.t === 'exit' && f.sid === shell.sid);
  client.close();
});
