/**
 * capacity: steps of more and more sessions at `rate`, measured at each step; the knee is
 * the last step with p99 ≤ 20 ms, reach ≥ 99.9% and every connection made.
 */
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult, NodeStat } from '../result.js';
import type { Target } from '../target.js';

interface Step { sessions: number; p50: number; p99: number; p999: number; reach: number; errors: number; nodes: NodeStat[] }

export async function runCapacity(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, Math.max(...o.steps)));
  const steps: Step[] = [];
  let knee = 0;
  let last: BenchResult | undefined;
  try {
    let have = 0;
    for (const n of o.steps) {
      ctx.log(`step: ${n} sessions (adding ${n - have})…`);
      const c = await load.connect(echoSpecs(target, n - have), target.token, 200);
      have = n;
      if (c.failed > 0) ctx.log(`  ${c.failed} connections failed: ${c.errors[0]}`);
      const r = await measureTyping(ctx, target, load, n, o.rate, {});
      steps.push({ sessions: n, p50: r.p50, p99: r.p99, p999: r.p999, reach: r.reach, errors: r.errors + c.failed, nodes: r.nodes });
      ctx.log(`  ${n} sessions: p50 ${r.p50} ms, p99 ${r.p99} ms, reach ${(r.reach * 100).toFixed(2)}%`);
      last = r;
      if (r.p99 > 20 || r.reach < 0.999 || c.failed > 0) break;
      knee = n;
    }
  } finally {
    await load.close();
  }
  if (!last) throw new Error('capacity: --steps has no positive session count');
  last.extra = { ...last.extra, knee, steps, target: '≥ 25000 sessions with p99 ≤ 20 ms' };
  last.parameters = { ...last.parameters, steps: o.steps };
  return last;
}
