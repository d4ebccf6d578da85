/**
 * A host reports its terminals' health in its registry heartbeat (keeper status, PTYs
 * in use against the kernel's limit), and in mode auto replaces a keeper that died.
 * An in-process node, its real keeper process.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { isAlive, keeperPid } from './helpers/keeper.js';
import { until } from './helpers/redis.js';
import { TestClient } from './helpers/ws.js';

let server: TestNode;
t.before(async () => {
  server = await startNode();
});
t.teardown(() => server.stop());

async function listed(): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.http}/v1/nodes`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  return ((await res.json()) as { nodes: Array<Record<string, unknown>> }).nodes[0]!;
}

t.test('the heartbeat says whether the keeper answers and how many PTYs the machine has left', async (t) => {
  const info = server.node.nodeInfo();
  t.equal(info.keeper, 'up');
  t.equal(info.keeperGraceMs, server.config.keeperGraceMs);
  t.ok(typeof info.ptys === 'number' && typeof info.ptyMax === 'number' && info.ptys <= info.ptyMax, `PTYs ${info.ptys} of ${info.ptyMax}`);
  t.match(await listed(), { role: 'both', draining: false, keeper: 'up', ptyMax: info.ptyMax }, '/v1/nodes shows them');
  t.match((await listed()).health, { takes: 'all', reasons: [], ptyUse: Number }, 'and what placement makes of them');
});

t.test('a keeper that died is replaced; the heartbeat follows', async (t) => {
  const socket = server.config.keeperSocket;
  const first = keeperPid(socket)!;
  const link = server.node.keeperLink!;
  const launches = link.launches;
  process.kill(first, 'SIGKILL');
  await until(() => link.launches > launches && link.state === 'up', 'a new keeper answers');
  const second = keeperPid(socket)!;
  t.not(second, first);
  t.ok(isAlive(second));
  t.equal(server.node.nodeInfo().keeper, 'up');
  await until(async () => (await listed()).keeper === 'up', 'the registry says so');
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh' });
  c.send({ t: 'in', sid, data: Buffer.from('echo in-""new-keeper\n') });
  await c.waitForOutput(sid, 'in-new-keeper');
  t.pass('terminals open in the new keeper');
  c.close();
});

t.test('SWITCHBOARD_KEEPER=off: terminals run inside the node, no keeper is started', async (t) => {
  const inproc = await startNode(['--keeper', 'off']);
  t.teardown(() => inproc.stop());
  t.equal(inproc.node.keeperLink, undefined);
  t.equal(inproc.node.nodeInfo().keeper, 'off');
  t.equal(keeperPid(inproc.config.keeperSocket), undefined, 'nothing listens on its socket');
  const c = await TestClient.connect(inproc.url);
  const { sid } = await c.request({ t: 'open', cmd: '/bin/sh' });
  c.send({ t: 'in', sid, data: Buffer.from('echo "in-node $PPID"\n') });
  const text = await c.waitForOutput(sid, /in-node \d+/);
  t.match(text, new RegExp(`in-node ${process.pid}\\b`), "the shell's parent is the node process");
  c.close();
});

t.test('switchboard keeper --check: a health check for a keeper run on its own (a container)', async (t) => {
  const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  const check = (socket: string): Promise<{ code: number; stderr: string }> => new Promise((resolve) => {
    execFile(process.execPath, [main, 'keeper', '--check', '--socket', socket], (err, _stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
  t.equal((await check(server.config.keeperSocket)).code, 0, 'the node\'s keeper answers');
  const none = await check(`${server.config.keeperSocket}.nobody`);
  t.equal(none.code, 1, 'no keeper: 1');
  t.match(none.stderr, /no keeper answers on/);
  t.equal(server.node.keeperLink!.state, 'up', 'the check left the keeper and the node\'s link alone');
});
