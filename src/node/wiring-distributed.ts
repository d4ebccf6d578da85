/**
 * Distributed seams: Redis for the bus, log, leases, registry and limiter; PostgreSQL
 * for the store. The only module that constructs ioredis and pg clients.
 */
import { Redis, Cluster } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config/config.js';
import { ConfigError } from '../errors/errors.js';
import type { Logger } from '../util/log.js';
import { BUS_PUBLISH_COMMANDS, RedisBus } from '../bus/redis-bus.js';
import { LOG_WRITE_COMMANDS, RedisLog } from '../log/redis-log.js';
import { RedisLeases } from '../lease/redis-leases.js';
import { RedisRegistry } from '../registry/redis-registry.js';
import { RedisLimiter } from '../limit/redis-limiter.js';
import { FallbackLimiter } from '../limit/fallback-limiter.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { MemoryLeases } from '../lease/memory-leases.js';
import { MemoryLog } from '../log/memory-log.js';
import { MemoryRegistry } from '../registry/memory-registry.js';
import { MemoryLimiter } from '../limit/memory-limiter.js';
import { MemoryStore } from '../store/memory-store.js';
import { MemoryPendingLogins } from '../auth/memory-pending-logins.js';
import { RedisPendingLogins } from '../auth/redis-pending-logins.js';
import type { Store } from '../store/store.js';
import type { Seams } from './wiring.js';
import { postgresStore } from './wiring-postgres.js';

/** Fail fast while Redis is away: callers answer `unavailable` rather than queue forever. */
const REDIS_OPTIONS = {
  enableAutoPipelining: true,
  autoPipeliningIgnoredCommands: [...LOG_WRITE_COMMANDS, ...BUS_PUBLISH_COMMANDS],
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
  retryStrategy: (attempt: number): number => Math.min(50 * attempt, 1_000),
};

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

export async function distributedSeams(config: Config, logger: Logger): Promise<Seams> {
  if (config.redisUrls.length > 0 && config.databaseUrl === undefined) {
    throw new ConfigError('SWITCHBOARD_DATABASE_URL', 'is required with SWITCHBOARD_REDIS_URL: every node must see the session records (postgres://…)');
  }
  const closers: Array<() => Promise<unknown>> = [];
  const health: Array<() => string | undefined> = [];

  let store: Store;
  let archive: Seams['archive'];
  let stats: Seams['stats'];
  if (config.databaseUrl !== undefined) {
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: config.databasePoolSize, connectionTimeoutMillis: 5_000,
      // A partition must fail queries, not hang them, so health and readiness can change.
      query_timeout: 5_000, statement_timeout: 5_000 });
    pool.on('error', (err) => logger.warn('postgres connection error', { err: err.message }));
    const pgSeams = await postgresStore(pool, logger, config.archiveIntervalMs);
    store = pgSeams.store;
    archive = pgSeams.archive;
    stats = () => ({ pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }, archive: pgSeams.archiveStats() });
    closers.push(pgSeams.close);
    logger.info('store: postgresql', { url: redact(config.databaseUrl), pool: config.databasePoolSize });
  } else {
    store = new MemoryStore();
  }

  if (config.redisUrls.length === 0) {
    // PostgreSQL only: one node whose records survive restarts.
    const bus = new MemoryBus();
    const leases = new MemoryLeases();
    const log = new MemoryLog(bus, leases, config.replayBytes);
    return {
      bus, leases, log, store, registry: new MemoryRegistry(), limiter: new MemoryLimiter(), pendingLogins: new MemoryPendingLogins(),
      ...(archive ? { archive } : {}),
      ...(stats ? { stats } : {}),
      health: () => [],
      close: async () => {
        await bus.close();
        await log.close();
        for (const c of closers) await c();
      },
    };
  }

  const client = config.redisUrls.length === 1
    ? new Redis(config.redisUrls[0]!, REDIS_OPTIONS)
    : new Cluster(config.redisUrls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    }), { ...REDIS_OPTIONS, shardedSubscribers: true, redisOptions: { connectTimeout: 2_000, maxRetriesPerRequest: 1 } } as ConstructorParameters<typeof Cluster>[1]);
  let redisDown = false;
  client.on('error', (err: Error) => {
    if (!redisDown) logger.warn('redis unreachable; retrying', { err: err.message });
    redisDown = true;
  });
  client.on('ready', () => {
    if (redisDown) logger.info('redis reachable again');
    redisDown = false;
  });
  logger.info('bus, log, leases, registry: redis', { urls: config.redisUrls.map(redact), cluster: config.redisUrls.length > 1 });

  const bus = new RedisBus(client);
  const log = new RedisLog(client, config.replayBytes);
  const leases = new RedisLeases(client);
  const registry = new RedisRegistry(client);
  const limiter = new FallbackLimiter(new RedisLimiter(client), { failMode: config.limitFailMode });
  health.push(() => (limiter.isDegraded() ? 'rate limiter degraded to local counting (redis unreachable)' : undefined));

  const pendingLogins = new RedisPendingLogins(client);

  return {
    bus, log, leases, registry, store, limiter, pendingLogins,
    ...(archive ? { archive } : {}),
    ...(stats ? { stats } : {}),
    health: () => health.map((h) => h()).filter((r): r is string => r !== undefined),
    close: async () => {
      await bus.close();
      await log.close();
      await leases.close();
      await registry.close();
      await limiter.close();
      for (const c of closers) await c();
      client.disconnect();
    },
  };
}
