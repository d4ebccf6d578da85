/**
 * The measurement most scenarios share: connected writers type at `rate` for warm-up +
 * duration (open loop, bench/loadgen-worker.ts), the processes' CPU is read at the start
 * and the end of the measured window, and the workers' reports become one BenchResult.
 *
 *   t0 ── warm-up ──▶ window start (CPU mark) ── duration ──▶ window end (CPU mark) ── drain 2 s
 */
import type { ConnSpec, MeasureMsg } from './loadgen-protocol.js';
import type { Options } from './options.js';
import type { LoadPool } from './pool.js';
import { CpuWindow } from './proc-stats.js';
import { summarize, type BenchResult } from './result.js';
import type { Target } from './target.js';

export interface Ctx {
  o: Options;
  log: (s: string) => void;
  progress: (s: string) => void;
}

const DRAIN_MS = 2_000;

/** One session per connection, spread over the target's edges. */
export function echoSpecs(target: Target, n: number, kind: 'echo' | 'pty' = 'echo', cmd?: string): ConnSpec[] {
  return Array.from({ length: n }, (_, i) => ({ url: target.edges[i % target.edges.length]!, action: 'open' as const, kind, writes: true, ...(cmd ? { cmd } : {}) }));
}

/** The worker-side measure options beyond the schedule (fan-out viewers, flood, failover). */
export type MeasureMore = Partial<Pick<MeasureMsg, 'viewerSchedule' | 'floodBytes' | 'floodWindow' | 'watchResumeAfter'>> & { t0?: number };

/** Type at `rate` for warm-up + duration on every writer the pool holds, and summarize. */
export async function measureTyping(
  ctx: Ctx, target: Target, load: LoadPool, sessions: number, rate: number, extra: Record<string, unknown>, more: MeasureMore = {},
): Promise<BenchResult> {
  const { o } = ctx;
  const t0 = more.t0 ?? Date.now() + 500;
  const windowStart = t0 + o.warmupS * 1000;
  const windowEnd = windowStart + o.durationS * 1000;
  const expectedTotal = Math.round(sessions * rate * (o.warmupS + o.durationS));
  // Process CPU is read over the measured window only (not the warm-up, not the drain).
  const window = new CpuWindow(target.procs);
  const started = new Promise<void>((resolve) => setTimeout(() => void window.start().then(resolve), windowStart - Date.now()));
  const stopped = started.then(() => new Promise<void>((resolve) => setTimeout(() => void window.stop().then(resolve), windowEnd - Date.now())));
  const results = await load.measure({
    ...more, t0, warmupMs: o.warmupS * 1000, durationMs: o.durationS * 1000, intervalMs: 1000 / rate, keyBytes: 1, drainMs: DRAIN_MS,
  }, ctx.progress, expectedTotal);
  await stopped;
  return summarize(o, target, results, window, load.pids, extra, {
    sessions, rate, durationS: o.durationS, warmupS: o.warmupS, edges: target.edges.length, hosts: o.single ? 0 : o.hosts,
    single: o.single, targets: o.urls.length > 0 ? o.urls : 'local', workers: load.workers.length,
  });
}
