/**
 * Every seam's contract against its Redis implementation, on one private redis-server
 * (flushed between suites); then what only Redis has: outages and recovery.
 */
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { sessionEvents } from '../../src/bus/channels.js';
import { RedisLeases } from '../../src/lease/redis-leases.js';
import { FallbackLimiter } from '../../src/limit/fallback-limiter.js';
import { RedisLimiter } from '../../src/limit/redis-limiter.js';
import { RedisLog } from '../../src/log/redis-log.js';
import { RedisRegistry } from '../../src/registry/redis-registry.js';
import { newSessionId } from '../../src/util/ids.js';
import { startRedis, until } from '../helpers/redis.js';
import { busContract } from './bus.js';
import { leasesContract } from './leases.js';
import { limiterContract } from './limiter.js';
import { logContract } from './log.js';
import { registryContract } from './registry.js';

const server = await startRedis();
t.teardown(() => server.stop());

/** A command client as the wiring would make one; closed when the test ends. */
function client(t: Test): Redis {
  const c = new Redis(server.url, { enableAutoPipelining: true });
  c.on('error', () => {}); // outages are expected here; health is asserted directly
  t.teardown(() => c.disconnect());
  return c;
}

const admin = client(t);
const flush = async (): Promise<void> => {
  await admin.flushall();
};

t.test('bus', async (t) => {
  await flush();
  await busContract(t, async () => {
    const [a, b] = [new RedisBus(client(t)), new RedisBus(client(t))];
    return { a, b, close: async () => { await a.close(); await b.close(); } };
  });
});

t.test('log', async (t) => {
  await flush();
  await logContract(t, async (replayBytes) => {
    const c = client(t);
    const bus = new RedisBus(c);
    return { log: new RedisLog(c, replayBytes), leases: new RedisLeases(c), bus, close: () => bus.close() };
  });
});

t.test('leases', async (t) => {
  await flush();
  await leasesContract(t, async () => new RedisLeases(client(t)));
});

t.test('registry', async (t) => {
  await registryContract(t, async () => {
    await flush();
    return new RedisRegistry(client(t));
  });
});

t.test('limiter', async (t) => {
  await flush();
  await limiterContract(t, async () => new RedisLimiter(client(t)));
});

t.test('limiter: fallback over a healthy primary', async (t) => {
  await flush();
  await limiterContract(t, async () => new FallbackLimiter(new RedisLimiter(client(t)), { failMode: 'closed' }));
});

t.test('the bus drops the Redis subscription with its last handler', async (t) => {
  const bus = new RedisBus(client(t));
  t.teardown(() => bus.close());
  const channel = sessionEvents(newSessionId());
  const subscribers = async () => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];
  const off1 = await bus.subscribe(channel, () => {});
  const off2 = await bus.subscribe(channel, () => {});
  t.equal(await subscribers(), 1, 'one Redis subscription for two handlers');
  off1();
  t.equal(bus.channelCount(), 1);
  off2();
  t.equal(bus.channelCount(), 0);
  await until(async () => (await subscribers()) === 0, 'UNSUBSCRIBE');
  t.pass('unsubscribed in Redis');
});

// Last: it kills the server.
t.test('outage: health, restore, resubscription, limiter fallback', async (t) => {
  const pub = client(t);
  const bus = new RedisBus(pub);
  t.teardown(() => bus.close());
  const log = new RedisLog(pub, 1 << 20);
  const leases = new RedisLeases(pub);
  const open = new FallbackLimiter(new RedisLimiter(pub), { failMode: 'open' });
  const closed = new FallbackLimiter(new RedisLimiter(pub), { failMode: 'closed' });
  const rule = { limit: 100, windowMs: 60_000 };
  await until(() => bus.isHealthy(), 'healthy bus');

  const channel = sessionEvents(newSessionId());
  const got: string[] = [];
  await bus.subscribe(channel, (p) => got.push(Buffer.from(p).toString()));
  let restored = 0;
  bus.onRestore(() => restored++);
  await bus.publish(channel, Buffer.from('before'));
  await until(() => got.length === 1, 'first message');
  t.ok((await open.take('k', rule)).ok);
  t.notOk(open.isDegraded());

  await server.kill('SIGKILL');
  await until(() => !bus.isHealthy() && pub.status !== 'ready', 'unhealthy bus');
  t.notOk(bus.isHealthy(), 'unhealthy while Redis is down');
  const lost = await bus.publish(channel, Buffer.from('lost')).then(() => null, (err: unknown) => err);
  t.match(lost, { code: 'unavailable', temporary: true }, 'publish rejects at once while down');

  const fromLocal = await open.take('k', rule);
  t.ok(fromLocal.ok, 'fail open: the local bucket answers');
  t.ok(open.isDegraded());
  t.ok(open.fallbackCount() >= 1);
  t.same(await closed.take('k', rule), { ok: false, remaining: 0, retryMs: 1000 }, 'fail closed: deny');
  t.ok(closed.isDegraded());
  t.equal(restored, 0);

  await server.restart();
  await until(() => restored > 0, 'onRestore');
  t.equal(restored, 1, 'onRestore fired once');
  t.ok(bus.isHealthy());
  await bus.publish(channel, Buffer.from('after'));
  await until(() => got.length === 2, 'message after restore');
  t.same(got, ['before', 'after'], 'the subscription made before the outage works again');

  await until(async () => {
    await open.take('k', rule);
    return !open.isDegraded();
  }, 'limiter recovery');
  t.pass('fallback limiter recovers');

  // Scripts are gone with the restart (empty cache): EVALSHA must fall back to EVAL.
  const sid = newSessionId();
  const epoch = (await leases.claim(sid, 'n1'))!;
  await log.append(sid, epoch, 0, Buffer.from('still works'));
  t.same(await log.bounds(sid), { start: 0, head: 11 });
});
