/**
 * The retry rule with real processes: `switchboard attach` (in a pty) reaches two edge
 * nodes through a load balancer; the node it is on drains, says `bye {retryMs}` and
 * stops. The CLI must wait retryMs, reconnect through the balancer to the other edge,
 * re-attach with `from`, and carry on: no output lost or repeated, input still working.
 */
import t from 'tap';
import { startRedis, until, type RedisServer } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { TEST_TOKEN } from './helpers/node.js';
import { CliInPty, proxyTo } from './helpers/cli.js';

let redis: RedisServer;
let postgres: PostgresServer;
const nodes: NodeProcess[] = [];

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  const env = { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url };
  nodes.push(...(await Promise.all([
    spawnNode('drain-edge-1', env, ['--role', 'edge']),
    spawnNode('drain-edge-2', env, ['--role', 'edge']),
    spawnNode('drain-host', env, ['--role', 'host']),
  ])));
  await until(async () => {
    const res = await fetch(`${nodes[0]!.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    return ((await res.json()) as { nodes: unknown[] }).nodes.length === 3;
  }, 'three nodes in the registry');
});

t.teardown(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
});

const PROMPT = /[$#%>] $/m;

/** Lines of terminal output matching `re` (a bare CR ends a line too, as `^…$/m` has it). */
function countLines(output: string, re: RegExp): number {
  return output.split(/[\r\n]+/).filter((l) => re.test(l)).length;
}

t.test('attach: a draining node says bye; the CLI reconnects to another node after retryMs and resumes', async (t) => {
  const [edge1, edge2] = nodes as [NodeProcess, NodeProcess];
  // The balancer sends each connection to edge 1 while it listens, else to edge 2.
  const lb = await proxyTo(edge1.port, edge2.port);
  t.teardown(() => lb.close());
  const cli = new CliInPty(['attach', '--url', `http://127.0.0.1:${lb.port}`, '--token', TEST_TOKEN]);
  t.teardown(() => cli.exit(1_000).catch(() => {}));
  await cli.waitFor(PROMPT);
  cli.write('echo before-$((1+1))\r');
  await cli.waitFor(/^before-2\r?$/m);

  const res = await fetch(`${edge1.http}/v1/nodes/${edge1.id}/drain`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(res.status, 202, 'edge 1 drains');
  const notice = await cli.waitFor(/\[switchboard: the node is draining; reconnecting to ([A-Za-z0-9_-]{22,}) in (\d+\.\d) s\]/);
  // The node sends retryMs of 250 ms plus up to as much jitter; the rule never undercuts it.
  t.ok(Number(notice[2]) >= 0.2, `waits at least the node's retryMs (${notice[2]} s)`);
  await cli.waitFor(/\[switchboard: reconnected\]/);
  t.equal(await edge1.exited, 0, 'edge 1 finished draining and stopped: the CLI is on edge 2 now');

  cli.write('echo after-$((2+2))\r');
  await cli.waitFor(/^after-4\r?$/m);
  t.equal(countLines(cli.output, /^before-2$/), 1, 'output from before the drain is not repeated');
  t.equal(countLines(cli.output, /^after-4$/), 1);
  t.notMatch(cli.output, /bytes of output could not be replayed/, 'no gap');
  cli.write('exit 7\r');
  t.equal(await cli.exit(), 7, "the session's exit code, through edge 2");
});
