/** storm: every client connects and opens a session at once; time until all are attached. */
import { echoSpecs, type Ctx } from '../measure.js';
import { curve, percentiles } from '../histograms.js';
import { LoadPool, workerCount } from '../pool.js';
import { CpuWindow } from '../proc-stats.js';
import { summarize, type BenchResult } from '../result.js';
import type { Target } from '../target.js';
import { round, sleep } from '../units.js';

export async function runStorm(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions));
  try {
    await sleep(500);
    ctx.log(`${o.sessions} clients connect and open at once…`);
    const window = new CpuWindow(target.procs);
    await window.start();
    const c = await load.connect(echoSpecs(target, o.sessions), target.token, Math.ceil(o.sessions / load.workers.length), 500);
    await window.stop();
    const allAttachedS = (c.lastDoneAt - c.startAt) / 1000;
    const p = percentiles(c.setup);
    const r = await summarize(o, target, [], window, load.pids, {
      attached: c.ok, failed: c.failed, allAttachedSeconds: round(allAttachedS, 3), creationsPerSecond: Math.round(c.ok / Math.max(allAttachedS, 0.001)),
    }, { sessions: o.sessions, edges: target.edges.length, hosts: o.single ? 0 : o.hosts, single: o.single, workers: load.workers.length });
    Object.assign(r, { p50: p.p50, p90: p.p90, p99: p.p99, p999: p.p999, max: p.max, curve: curve(c.setup) });
    r.reach = round(c.ok / o.sessions, 5);
    r.errors = c.failed;
    r.errorSamples = c.errors;
    return r;
  } finally {
    await load.close();
  }
}
