/**
 * One bench result (what `--json` prints, the table and the report show) and how it is
 * built from the workers' reports.
 */
import type { ResultMsg } from './loadgen-protocol.js';
import { curve, mergeHistograms, percentiles, type Percentiles } from './histograms.js';
import type { Options, Scenario } from './options.js';
import { rssBytes, type CpuWindow } from './proc-stats.js';
import { nodeStats, type Target } from './target.js';
import { round } from './units.js';

export interface NodeStat {
  id: string;
  role: string;
  rssBytes: number;
  /** Cores used over the measured window (CPU seconds ÷ wall seconds). */
  cpu: number | null;
  /** CPU µs this process spent per keystroke echoed in the measured window. */
  usPerKeystroke: number | null;
}

/** Switchboard ÷ baseline, per percentile: 2 means Switchboard's figure is twice the baseline's. */
export interface Ratio {
  of: string;
  p50: number; p90: number; p99: number; p999: number; max: number;
}

export interface BenchResult {
  scenario: Scenario;
  parameters: Record<string, unknown>;
  p50: number; p90: number; p99: number; p999: number; max: number;
  reach: number;
  errors: number;
  errorSamples: string[];
  expected: number;
  received: number;
  /** Latency from the actual send (excludes the load generator's own lateness). */
  fromSend: Percentiles;
  nodes: NodeStat[];
  /** Sum of the processes' CPU µs per keystroke (null when not measured). */
  usPerKeystroke: number | null;
  loadgen: { workers: number; cpu: number; rssBytes: number; maxSendLagMs: number };
  /** Scenario-specific figures. */
  extra: Record<string, unknown>;
  /** Percentile curve for the plot: [percentile, ms]. */
  curve: Array<[number, number]>;
  baseline?: BenchResult;
  ratio?: Ratio;
}

export function ratio(r: BenchResult, b: BenchResult, of: string): Ratio {
  const x = (k: 'p50' | 'p90' | 'p99' | 'p999' | 'max'): number => round(r[k] / Math.max(b[k], 0.001), 2);
  return { of, p50: x('p50'), p90: x('p90'), p99: x('p99'), p999: x('p999'), max: x('max') };
}

type Summed = 'floodBytesIn' | 'lostBytes' | 'dupBytes' | 'gapFrames' | 'ownerFrames' | 'exitFrames' | 'closes' | 'notResumed';

/** Figures only some scenarios have (flood throughput, failover resumption, lost bytes). */
function scenarioExtra(o: Options, results: ResultMsg[], extra: Record<string, unknown>): Record<string, unknown> {
  const sum = (k: Summed): number => results.reduce((a, r) => a + (r[k] ?? 0), 0);
  if (o.scenario === 'flood') {
    extra = { ...extra, floodMBps: round(sum('floodBytesIn') / o.durationS / 1e6, 1), target: 'flood ≥ 100 MB/s, others\' echo p99 ≤ 20 ms' };
  }
  if (o.scenario === 'failover') {
    const resumes = results.flatMap((r) => r.resumeMs ?? []).sort((a, b) => a - b);
    return {
      ...extra, interrupted: resumes.length + sum('notResumed'), resumed: resumes.length, notResumed: sum('notResumed'),
      resumeP50Ms: resumes.length ? round(resumes[Math.floor(resumes.length / 2)]!, 1) : null,
      resumeMaxMs: resumes.length ? round(resumes[resumes.length - 1]!, 1) : null,
      lostBytes: sum('lostBytes'), dupBytes: sum('dupBytes'), gapFrames: sum('gapFrames'), ownerFrames: sum('ownerFrames'),
      exitFrames: sum('exitFrames'), socketCloses: sum('closes'), target: 'all resumed within 2 s, 0 bytes lost',
    };
  }
  if (sum('lostBytes') || sum('dupBytes') || sum('gapFrames')) {
    return { ...extra, lostBytes: sum('lostBytes'), dupBytes: sum('dupBytes'), gapFrames: sum('gapFrames') };
  }
  return extra;
}

/** Builds the result of one measurement from the workers' reports and the processes' CPU. */
export async function summarize(
  o: Options, target: Target, results: ResultMsg[], window: CpuWindow | undefined, workerPids: number[],
  extra: Record<string, unknown>, parameters: Record<string, unknown>,
): Promise<BenchResult> {
  const h = mergeHistograms(results.map((r) => r.hist));
  const p = percentiles(h);
  const expected = results.reduce((a, r) => a + (r.expected ?? 0), 0);
  const received = results.reduce((a, r) => a + (r.received ?? 0), 0);
  const cpuMs = results.reduce((a, r) => a + (r.cpuUserMs ?? 0) + (r.cpuSystemMs ?? 0), 0);
  const wallMs = Math.max(...results.map((r) => r.wallMs ?? 0), 1);
  const rss = (await Promise.all(workerPids.map((pid) => rssBytes({ pid })))).reduce<number>((a, b) => a + (b ?? 0), 0);
  const nodes = await nodeStats(target, window, received);
  const perKey = nodes.map((n) => n.usPerKeystroke).filter((v): v is number => v !== null);
  return {
    scenario: o.scenario,
    parameters,
    p50: p.p50, p90: p.p90, p99: p.p99, p999: p.p999, max: p.max,
    reach: expected > 0 ? round(received / expected, 5) : 1,
    errors: results.reduce((a, r) => a + (r.errors ?? 0), 0),
    errorSamples: [...new Set(results.flatMap((r) => r.errorSamples ?? []))].slice(0, 10),
    expected, received,
    fromSend: percentiles(mergeHistograms(results.map((r) => r.histFromSend))),
    nodes,
    usPerKeystroke: perKey.length > 0 ? round(perKey.reduce((a, b) => a + b, 0), 1) : null,
    loadgen: { workers: results.length, cpu: round(cpuMs / wallMs, 3), rssBytes: rss, maxSendLagMs: round(Math.max(0, ...results.map((r) => r.maxSendLagMs ?? 0)), 2) },
    extra: scenarioExtra(o, results, extra),
    curve: curve(h),
  };
}
