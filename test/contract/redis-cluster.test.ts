/**
 * The contracts against a 3-master Redis Cluster: sharded pub/sub for the bus and the
 * log's publish, every session key in its `{sid}` slot, the registry in its `{nodes}` slot.
 */
import t, { type Test } from 'tap';
import { Cluster } from 'ioredis';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { RedisLeases } from '../../src/lease/redis-leases.js';
import { RedisLimiter } from '../../src/limit/redis-limiter.js';
import { RedisLog } from '../../src/log/redis-log.js';
import { RedisRegistry } from '../../src/registry/redis-registry.js';
import { startRedisCluster } from '../helpers/redis.js';
import { busContract } from './bus.js';
import { leasesContract } from './leases.js';
import { limiterContract } from './limiter.js';
import { logContract } from './log.js';
import { registryContract } from './registry.js';

const cluster = await startRedisCluster();
t.teardown(() => cluster.stop());

function client(t: Test): Cluster {
  const c = new Cluster(cluster.nodes, { enableAutoPipelining: true, shardedSubscribers: true });
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}

const admin = client(t);
const flush = async (): Promise<void> => {
  await Promise.all(admin.nodes('master').map((node) => node.flushall()));
};

t.test('bus (sharded pub/sub)', async (t) => {
  await busContract(t, async () => {
    const [a, b] = [new RedisBus(client(t)), new RedisBus(client(t))];
    return { a, b, close: async () => { await a.close(); await b.close(); } };
  });
});

t.test('log (SPUBLISH from the append script)', async (t) => {
  await logContract(t, async (replayBytes) => {
    const c = client(t);
    const bus = new RedisBus(c);
    return { log: new RedisLog(c, replayBytes), leases: new RedisLeases(c), bus, close: () => bus.close() };
  });
});

t.test('leases', async (t) => {
  await leasesContract(t, async () => new RedisLeases(client(t)));
});

t.test('registry', async (t) => {
  await registryContract(t, async () => {
    await flush();
    return new RedisRegistry(client(t));
  });
});

t.test('limiter', async (t) => {
  await limiterContract(t, async () => new RedisLimiter(client(t)));
});
