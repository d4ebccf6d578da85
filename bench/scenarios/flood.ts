/**
 * flood: one session floods output (a PTY running --flood-cmd, or echo with 16 KiB
 * inputs), a paused viewer reads it slowly, and N echo sessions type beside it: their
 * latency, the flood's throughput, and the nodes' memory before and after.
 */
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult } from '../result.js';
import { nodeStats, type Target } from '../target.js';

export async function runFlood(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions + 2));
  try {
    const echoFlood = o.floodCmd === 'echo';
    const f = await load.connect([echoFlood
      ? { url: target.edges[0]!, action: 'open', kind: 'echo', writes: false, flood: true }
      : { url: target.edges[0]!, action: 'open', kind: 'pty', cmd: o.floodCmd, writes: false }], target.token, 1);
    const sid = f.sids[0]!;
    if (!sid) throw new Error(`could not open the flooding session: ${f.errors[0]}`);
    // A slow reader: a viewer whose socket is paused, so its output piles up server-side.
    await load.connect([{ url: target.edges[target.edges.length - 1]!, action: 'attach', sid, role: 'viewer', writes: false, slow: true }], target.token, 1);
    ctx.log(`flooding session ${sid} (${echoFlood ? 'echo, 16 KiB inputs' : `pty running ${o.floodCmd}`}), a paused viewer, ${o.sessions} echo sessions at ${o.rate}/s…`);
    await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    const rssBefore = await nodeStats(target);
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, {}, { floodBytes: 16_384, floodWindow: 1 << 20 });
    r.extra = { ...r.extra, rssBeforeBytes: rssBefore.map((n) => ({ id: n.id, rss: n.rssBytes })) };
    r.parameters = { ...r.parameters, floodCmd: o.floodCmd };
    return r;
  } finally {
    await load.close();
  }
}
