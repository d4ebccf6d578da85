/**
 * failover: N sessions typing over 2+ hosts; the host with the most sessions is killed
 * with SIGKILL a quarter into the window (≤ 5 s); clients' resumption, lost and repeated
 * bytes, and latency across the outage.
 */
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { BenchResult } from '../result.js';
import type { Target } from '../target.js';
import { round } from '../units.js';

export async function runFailover(ctx: Ctx, target: Target): Promise<BenchResult> {
  const { o } = ctx;
  const cluster = target.cluster;
  if (!cluster) throw new Error('failover needs the local cluster (no --url)');
  const load = new LoadPool(workerCount(o.workers, o.sessions));
  try {
    ctx.log(`connecting ${o.sessions} echo sessions…`);
    const c = await load.connect(echoSpecs(target, o.sessions), target.token, 200);
    const counts = new Map<string, number>();
    for (const n of c.nodes) counts.set(n, (counts.get(n) ?? 0) + 1);
    const hosts = cluster.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.role === 'host');
    const victim = hosts.sort((a, b) => (counts.get(b.n.id) ?? 0) - (counts.get(a.n.id) ?? 0))[0];
    if (!victim) throw new Error('failover needs host nodes (not --single)');
    const killAt = Date.now() + 500 + o.warmupS * 1000 + Math.min(5_000, (o.durationS * 1000) / 4);
    ctx.log(`will kill -9 ${victim.n.id} (${counts.get(victim.n.id) ?? 0} sessions) ${round((killAt - Date.now()) / 1000, 1)} s from now`);
    const killTimer = setTimeout(() => {
      ctx.log(`kill -9 ${victim.n.id}`);
      void cluster.kill(victim.i, 'SIGKILL');
    }, killAt - Date.now());
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, {}, { watchResumeAfter: killAt });
    clearTimeout(killTimer);
    r.parameters = { ...r.parameters, victim: victim.n.id, victimSessions: counts.get(victim.n.id) ?? 0 };
    return r;
  } finally {
    await load.close();
  }
}
