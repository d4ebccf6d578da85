/**
 * The cross-node path again, on a 3-master Redis Cluster (sharded pub/sub) with every
 * client coming through HAProxy round-robin: no stickiness anywhere.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedisCluster, until, type RedisCluster } from './helpers/redis.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { spawnNode, type NodeProcess } from './helpers/processes.js';
import { haproxyConfig } from '../src/launcher/local-cluster.js';
import { TestClient } from './helpers/ws.js';
import { TEST_TOKEN } from './helpers/node.js';

let redis: RedisCluster;
let postgres: PostgresServer;
let nodes: NodeProcess[] = [];
let haproxy: ChildProcess | undefined;
let dir: string;
let haproxyUrl: string;

t.before(async () => {
  [redis, postgres] = await Promise.all([startRedisCluster(), startPostgres()]);
  const env = { SWITCHBOARD_REDIS_URL: redis.urls.join(','), SWITCHBOARD_DATABASE_URL: postgres.url };
  nodes = await Promise.all(['rc-1', 'rc-2', 'rc-3'].map((id) => spawnNode(id, env)));
  dir = await mkdtemp(join(tmpdir(), 'sb-haproxy-'));
  const port = await freePort();
  await writeFile(join(dir, 'haproxy.cfg'), haproxyConfig(port, nodes.map((n) => ({ id: n.id, port: n.port }))));
  haproxy = spawn('/usr/sbin/haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: 'ignore' });
  haproxyUrl = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${haproxyUrl}/readyz`).catch(() => undefined))?.status === 200, 'haproxy up');
});
t.teardown(async () => {
  haproxy?.kill('SIGKILL');
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all([redis?.stop(), postgres?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

t.test('open, attach and type through HAProxy on a Redis Cluster: same bytes everywhere', async (t) => {
  const ws = haproxyUrl.replace('http', 'ws') + '/v1/ws';
  const connect = (): Promise<TestClient> => TestClient.connect(ws, { token: TEST_TOKEN });
  const [opener, viewer, typist] = [await connect(), await connect(), await connect()];
  const served = new Set<string>();
  for (const c of [opener, viewer, typist]) served.add((await c.request({ t: 'ping' })).node);
  t.ok(served.size >= 2, `clients landed on different nodes (${[...served].join(', ')})`);
  const { sid } = await opener.request({ t: 'open', kind: 'echo' });
  await viewer.request({ t: 'attach', sid, from: 0, role: 'viewer' });
  await typist.request({ t: 'attach', sid, from: 0 });
  for (let i = 0; i < 50; i++) typist.send({ t: 'in', sid, data: Buffer.from(`m${i};`) });
  const expected = Array.from({ length: 50 }, (_, i) => `m${i};`).join('');
  for (const c of [opener, viewer, typist]) {
    await c.waitForBytes(sid, expected.length);
    t.equal(c.text(sid), expected, 'every client has the exact stream');
  }
  const exit = viewer.next((f) => f.t === 'exit');
  await opener.request({ t: 'kill', sid });
  await exit;
  for (const c of [opener, viewer, typist]) c.close();
});
