/**
 * echo: N sessions (echo backend), each typing `rate` keystrokes a second; latency from
 * each keystroke's intended send time to its echo. The headline scenario.
 */
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult } from '../result.js';
import type { Target } from '../target.js';
import { round } from '../units.js';

/** Connects N writers of `kind` sessions, types for warm-up + duration, summarizes. */
export async function runTyping(ctx: Ctx, target: Target, kind: 'echo' | 'pty'): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions));
  try {
    ctx.log(`connecting ${o.sessions} ${kind} sessions over ${load.workers.length} worker(s)…`);
    const c = await load.connect(echoSpecs(target, o.sessions, kind, kind === 'pty' ? 'cat' : undefined), target.token, 200);
    const connectSeconds = round((c.lastDoneAt - c.startAt) / 1000, 2);
    ctx.log(`connected ${c.ok}/${o.sessions} in ${round(connectSeconds, 1)} s${c.failed ? ` (${c.failed} failed: ${c.errors[0]})` : ''}`);
    return await measureTyping(ctx, target, load, o.sessions, o.rate, { connectFailed: c.failed, connectSeconds });
  } finally {
    await load.close();
  }
}

export function runEcho(ctx: Ctx, target: Target): Promise<BenchResult> {
  return runTyping(ctx, target, 'echo');
}
