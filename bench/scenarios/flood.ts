/**
 * flood: one session floods output (a PTY running --flood-cmd through `sh -c`, or echo
 * with 16 KiB inputs), a paused viewer reads it slowly, and N echo sessions type beside
 * it: their latency, the flood's throughput, and the nodes' memory before and after.
 * For a PTY flood, a bare node-pty reader of the same command is measured first in the
 * same run (bench/pty-ceiling.ts): the most this machine's PTY layer gives.
 */
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult } from '../result.js';
import { nodeStats, type Target } from '../target.js';
import { measurePtyCeiling, type PtyCeiling } from '../pty-ceiling.js';

/** Longest the bare reader runs (shorter when the measured window is). */
const CEILING_MAX_SECONDS = 5;

export async function runFlood(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions + 2));
  try {
    const echoFlood = o.floodCmd === 'echo';
    let ceiling: PtyCeiling | undefined;
    if (!echoFlood) {
      const seconds = Math.min(CEILING_MAX_SECONDS, Math.max(o.durationS, 1));
      ctx.log(`a bare node-pty reader of '${o.floodCmd}' for ${seconds} s (this machine's PTY ceiling)…`);
      ceiling = await measurePtyCeiling(o.floodCmd, seconds);
    }
    const f = await load.connect([echoFlood
      ? { url: target.edges[0]!, action: 'open', kind: 'echo', writes: false, flood: true }
      : { url: target.edges[0]!, action: 'open', kind: 'pty', cmd: 'sh', args: ['-c', o.floodCmd], writes: false }], target.token, 1);
    const sid = f.sids[0]!;
    if (!sid) throw new Error(`could not open the flooding session: ${f.errors[0]}`);
    // A slow reader: a viewer whose socket is paused, so its output piles up server-side.
    await load.connect([{ url: target.edges[target.edges.length - 1]!, action: 'attach', sid, role: 'viewer', writes: false, slow: true }], target.token, 1);
    ctx.log(`flooding session ${sid} (${echoFlood ? 'echo, 16 KiB inputs' : `pty running ${o.floodCmd}`}), a paused viewer, ${o.sessions} echo sessions at ${o.rate}/s…`);
    await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    const rssBefore = await nodeStats(target);
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, {}, { floodBytes: 16_384, floodWindow: 1 << 20 });
    if (ceiling) {
      const mbps = r.extra?.floodMBps as number;
      r.extra = { ...r.extra, barePtyMBps: ceiling.mbps, ofBarePty: ceiling.mbps ? Math.round((mbps / ceiling.mbps) * 100) / 100 : null, barePtyMeanReadBytes: ceiling.meanReadBytes, barePtyReaderCores: ceiling.readerCores };
    }
    r.extra = { ...r.extra, rssBeforeBytes: rssBefore.map((n) => ({ id: n.id, rss: n.rssBytes })) };
    r.parameters = { ...r.parameters, floodCmd: o.floodCmd };
    return r;
  } finally {
    await load.close();
  }
}
