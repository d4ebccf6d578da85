/**
 * idle: N sockets each open an echo session and then stay silent. What does an idle
 * session cost?
 *
 * - Memory, measured from outside through /proc (VmRSS): each node's RSS after the idle
 *   window minus before connecting, ÷ count: per connection on edge nodes, per session
 *   on host nodes (both on a `--single` node). The settling (`--warmup`, 60 s by default)
 *   lets V8 collect the connect burst's garbage, so that figure is what an idle session
 *   costs; the same quotient just after connecting and at the highest RSS sampled (once a
 *   second) are reported beside it, so the burst's cost is not hidden.
 * - Steady-state traffic over the idle window (`--duration`, after `--warmup` seconds of
 *   settling): Redis commands per second from INFO commandstats, with the busiest
 *   commands, and PostgreSQL transactions per second; and each process's CPU. Run at 1K
 *   and 10K sessions, these show whether idle traffic stays flat as sessions grow.
 */
import { PostgresSampler, RedisSampler, type PostgresTraffic, type RedisTraffic } from '../datastore-stats.js';
import { echoSpecs, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import { CpuWindow } from '../proc-stats.js';
import { summarize, type BenchResult, type NodeStat } from '../result.js';
import { nodeStats, type Target } from '../target.js';
import { round, sleep } from '../units.js';

const RSS_METHOD = 'from outside: /proc/<pid>/status VmRSS after the idle window minus before connecting, ÷ count';
const ROLES = { bytesPerConnection: 'edge', bytesPerSession: 'host', bytesPerConnectionWithSession: 'both' } as const;

/** RSS growth of the nodes with `role`, ÷ count; null when there are none. */
function perItem(before: NodeStat[], after: NodeStat[], role: string, count: number): number | null {
  const nodes = after.filter((n) => n.role === role);
  if (nodes.length === 0 || count === 0) return null;
  const grown = nodes.reduce((a, n) => a + n.rssBytes - (before.find((b) => b.id === n.id)?.rssBytes ?? 0), 0);
  return Math.round(grown / count);
}

/** perItem for each role, keyed by what the figure is per. */
function perRole(before: NodeStat[], after: NodeStat[], count: number): Record<keyof typeof ROLES, number | null> {
  const entries = Object.entries(ROLES).map(([key, role]) => [key, perItem(before, after, role, count)]);
  return Object.fromEntries(entries) as Record<keyof typeof ROLES, number | null>;
}

/** Samples the nodes' RSS once a second and keeps each node's highest. */
class PeakRss {
  private readonly peak = new Map<string, NodeStat>();
  private readonly timer: NodeJS.Timeout;
  private sampling: Promise<void> = Promise.resolve();

  constructor(private readonly target: Target) {
    // A failed sample only loses that second's figure; unref: a run that throws must not
    // be kept alive by this timer.
    this.timer = setInterval(() => { this.sampling = this.sample().catch(() => {}); }, 1_000);
    this.timer.unref();
  }

  async sample(): Promise<void> {
    for (const n of await nodeStats(this.target)) {
      if (n.rssBytes > (this.peak.get(n.id)?.rssBytes ?? -1)) this.peak.set(n.id, n);
    }
  }

  async stop(): Promise<NodeStat[]> {
    clearInterval(this.timer);
    await this.sampling;
    return [...this.peak.values()];
  }
}

export async function runIdle(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions));
  const redis = target.redisUrl ? new RedisSampler(target.redisUrl) : undefined;
  const postgres = target.databaseUrl ? new PostgresSampler(target.databaseUrl) : undefined;
  try {
    await sleep(1_000);
    const before = await nodeStats(target);
    ctx.log(`connecting ${o.sessions} sockets, each opening an echo session…`);
    const peak = new PeakRss(target);
    const c = await load.connect(echoSpecs(target, o.sessions).map((s) => ({ ...s, writes: false })), target.token, 200);
    if (c.failed) ctx.log(`${c.failed} failed: ${c.errors[0]}`);
    const afterBurst = await nodeStats(target);
    ctx.log(`settling ${o.warmupS} s, then ${o.durationS} s idle…`);
    await sleep(o.warmupS * 1000);
    const highest = await peak.stop();
    const window = new CpuWindow(target.procs);
    await Promise.all([window.start(), redis?.start(), postgres?.start()]);
    await sleep(o.durationS * 1000);
    const [, redisTraffic, pgTraffic] = await Promise.all([window.stop(), redis?.stop(), postgres?.stop()]) as [void, RedisTraffic | undefined, PostgresTraffic | undefined];
    const after = await nodeStats(target);
    const r = await summarize(o, target, [], window, load.pids, {
      connections: c.ok,
      rssMethod: RSS_METHOD,
      ...perRole(before, after, c.ok),
      justAfterConnecting: perRole(before, afterBurst, c.ok),
      atHighestRss: perRole(before, highest, c.ok),
      rssBytes: after.map((n) => ({
        id: n.id, role: n.role, before: before.find((b) => b.id === n.id)?.rssBytes ?? 0,
        highest: highest.find((h) => h.id === n.id)?.rssBytes ?? 0, after: n.rssBytes,
      })),
      idleSeconds: round(window.wallSeconds, 2),
      redisCommandsPerSecond: redisTraffic?.commandsPerSecond ?? null,
      redisTopCommands: redisTraffic?.top ?? [],
      postgresTransactionsPerSecond: pgTraffic?.transactionsPerSecond ?? null,
      target: '≤ 8 KiB RSS per idle connection',
    }, { sessions: o.sessions, idleS: o.durationS, settleS: o.warmupS, edges: target.edges.length, hosts: o.single ? 0 : o.hosts, single: o.single, workers: load.workers.length });
    r.reach = round(c.ok / Math.max(o.sessions, 1), 5);
    r.errors = c.failed;
    r.errorSamples = c.errors;
    return r;
  } finally {
    await load.close();
    await redis?.close();
    await postgres?.close();
  }
}
