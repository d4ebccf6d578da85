/** fanout: one writer at `rate`, M viewers of its session over the edges; latency per delivery. */
import { measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult } from '../result.js';
import type { Target } from '../target.js';

export async function runFanout(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.viewers + 1));
  try {
    const w = await load.connect([{ url: target.edges[0]!, action: 'open', kind: 'echo', writes: true }], target.token, 1);
    const sid = w.sids[0]!;
    if (!sid) throw new Error(`could not open the fan-out session: ${w.errors[0]}`);
    ctx.log(`attaching ${o.viewers} viewers to ${sid} over ${target.edges.length} edge(s)…`);
    const v = await load.connect(Array.from({ length: o.viewers }, (_, i) => ({
      url: target.edges[i % target.edges.length]!, action: 'attach' as const, sid, role: 'viewer' as const, from: 0, writes: false,
    })), target.token, 200);
    const t0 = Date.now() + 500;
    // The writer is worker 0's only writer: phaseFraction 0, one writer, so keystroke k at t0 + k × interval.
    const r = await measureTyping(ctx, target, load, 1, o.rate, { viewersAttached: v.ok, viewersFailed: v.failed }, {
      t0, viewerSchedule: { t0, phaseMs: 0, intervalMs: 1000 / o.rate, baseOff: 0 },
    });
    r.parameters = { ...r.parameters, viewers: o.viewers };
    return r;
  } finally {
    await load.close();
  }
}
