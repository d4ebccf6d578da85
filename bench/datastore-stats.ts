/**
 * What the datastores do over a window, asked of them directly: Redis commands from
 * `INFO commandstats` (cumulative `calls` per command) and PostgreSQL transactions from
 * `pg_stat_database` (xact_commit + xact_rollback). The idle scenario reads these to show
 * whether steady-state traffic grows with idle sessions.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { round } from './units.js';

export interface CommandRate {
  command: string;
  calls: number;
  perSecond: number;
}

export interface RedisTraffic {
  /** All commands' calls over the window ÷ its seconds (the bench's own INFO excluded). */
  commandsPerSecond: number;
  windowSeconds: number;
  /** The busiest commands, by calls over the window. */
  top: CommandRate[];
}

/** `cmdstat_publish:calls=12,usec=…` lines → command → calls. */
export function parseCommandStats(info: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}

/** Per-command deltas between two samples; `ownInfo` INFO calls (ours) are taken out. */
export function commandRates(before: Map<string, number>, after: Map<string, number>, seconds: number, ownInfo: number, topN = 8): RedisTraffic {
  const rates: CommandRate[] = [];
  let total = 0;
  for (const [command, n] of after) {
    const calls = n - (before.get(command) ?? 0) - (command === 'info' ? ownInfo : 0);
    if (calls <= 0) continue;
    total += calls;
    rates.push({ command, calls, perSecond: round(calls / seconds, 2) });
  }
  rates.sort((a, b) => b.calls - a.calls);
  return { commandsPerSecond: round(total / seconds, 2), windowSeconds: round(seconds, 2), top: rates.slice(0, topN) };
}

/** Samples a Redis server's command counters over a window. */
export class RedisSampler {
  private readonly redis: Redis;
  private first: { at: number; calls: Map<string, number> } | undefined;

  constructor(url: string) {
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  }

  private async sample(): Promise<Map<string, number>> {
    if (this.redis.status === 'wait') await this.redis.connect();
    return parseCommandStats(await this.redis.info('commandstats'));
  }

  async start(): Promise<void> {
    const calls = await this.sample();
    this.first = { at: Date.now(), calls };
  }

  /** The traffic since start(); our one INFO in between is not counted. */
  async stop(): Promise<RedisTraffic> {
    if (!this.first) throw new Error('RedisSampler.stop before start');
    const calls = await this.sample();
    return commandRates(this.first.calls, calls, (Date.now() - this.first.at) / 1000, 1);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

export interface PostgresTraffic {
  /** Committed + rolled back transactions, all databases, over the window ÷ its seconds. */
  transactionsPerSecond: number;
  windowSeconds: number;
}

/**
 * Samples PostgreSQL's transaction counters. Backends publish their counts to the
 * statistics system at most once a second (and up to 10 s late when idle), so a window's
 * rate is approximate at its edges; it includes the one sampling query of ours.
 */
export class PostgresSampler {
  private readonly client: pg.Client;
  private connected = false;
  private first: { at: number; xacts: number } | undefined;

  constructor(url: string) {
    this.client = new pg.Client({ connectionString: url });
  }

  private async sample(): Promise<number> {
    if (!this.connected) {
      await this.client.connect();
      this.connected = true;
    }
    const r = await this.client.query<{ n: string }>('SELECT sum(xact_commit + xact_rollback)::text AS n FROM pg_stat_database');
    return Number(r.rows[0]?.n ?? 0);
  }

  async start(): Promise<void> {
    const xacts = await this.sample();
    this.first = { at: Date.now(), xacts };
  }

  async stop(): Promise<PostgresTraffic> {
    if (!this.first) throw new Error('PostgresSampler.stop before start');
    const xacts = await this.sample();
    const seconds = (Date.now() - this.first.at) / 1000;
    return { transactionsPerSecond: round((xacts - this.first.xacts) / seconds, 2), windowSeconds: round(seconds, 2) };
  }

  async close(): Promise<void> {
    if (this.connected) await this.client.end();
  }
}
