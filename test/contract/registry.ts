/** The Registry contract (src/registry/registry.ts), run against every implementation. */
import type { Test } from 'tap';
import type { NodeInfo, Registry } from '../../src/registry/registry.js';
import { until } from '../helpers/redis.js';

const LONG_MS = 60_000;

const node = (id: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  role: 'both',
  addr: `127.0.0.1:${7000 + id.length}`,
  sessions: 0,
  clients: 0,
  capacity: 1000,
  draining: false,
  startedAt: 1_700_000_000_000,
  lastSeen: 1_700_000_000_000,
  rss: 50_000_000,
  cpu: 0.25,
  ...extra,
});

/** `make` returns a registry over an empty store. */
export async function registryContract(t: Test, make: () => Promise<Registry>): Promise<void> {
  const setup = async (t: Test): Promise<Registry> => {
    const registry = await make();
    t.teardown(() => registry.close());
    return registry;
  };

  t.test('lists live nodes sorted by id, with their latest info', async (t) => {
    const registry = await setup(t);
    t.same(await registry.list(), []);
    await registry.heartbeat(node('node-b'), LONG_MS);
    await registry.heartbeat(node('node-a:7070'), LONG_MS);
    t.same(await registry.list(), [node('node-a:7070'), node('node-b')]);
    await registry.heartbeat(node('node-b', { sessions: 7, draining: true }), LONG_MS);
    t.same(await registry.list(), [node('node-a:7070'), node('node-b', { sessions: 7, draining: true })]);
  });

  t.test('remove deletes a node at once', async (t) => {
    const registry = await setup(t);
    await registry.heartbeat(node('a'), LONG_MS);
    await registry.heartbeat(node('b'), LONG_MS);
    await registry.remove('a');
    t.same((await registry.list()).map((n) => n.id), ['b']);
    await registry.remove('missing');
  });

  t.test('a node whose heartbeat expired is not listed', async (t) => {
    const registry = await setup(t);
    await registry.heartbeat(node('stays'), LONG_MS);
    await registry.heartbeat(node('goes'), 30);
    await until(async () => !(await registry.list()).some((n) => n.id === 'goes'), 'heartbeat expiry');
    t.same((await registry.list()).map((n) => n.id), ['stays']);
    await registry.heartbeat(node('goes'), LONG_MS);
    t.same((await registry.list()).map((n) => n.id), ['goes', 'stays'], 'back after a new heartbeat');
  });
}
