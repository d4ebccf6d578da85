/**
 * `--baseline relay`: the bare relay of bench/relay-baseline/: `--hosts` owner processes
 * and `--edges` edge processes (uWebSockets.js) joined by ioredis, one PUBLISH per
 * keystroke on a per-session channel each way, no log, no leases, no store. It speaks
 * the protocol subset the load generator uses, so the `ws` transport drives it as is.
 */
import type { Ctx } from '../measure.js';
import type { BenchResult } from '../result.js';
import { BASELINE_TOKEN, baselineJs, runBaselineEcho, spawnListening, startBaseline } from './baseline.js';

export const RELAY_SYSTEM = 'bare relay: uWebSockets.js + ioredis, one PUBLISH per keystroke each way';

export async function runRelayBaseline(ctx: Ctx): Promise<BenchResult> {
  const { o } = ctx;
  ctx.log(`starting the bare relay baseline (Redis, ${o.hosts} owner and ${o.edges} edge process(es))…`);
  const target = await startBaseline(async (redisUrl) => {
    const owners = [];
    for (let i = 0; i < o.hosts; i++) {
      owners.push(await spawnListening(baselineJs('relay-baseline/owner.js'), ['--id', `relay-owner-${i + 1}`, '--redis-url', redisUrl]));
    }
    const ownerIds = owners.map((_, i) => `relay-owner-${i + 1}`).join(',');
    const edges = [];
    for (let i = 0; i < o.edges; i++) {
      edges.push(await spawnListening(baselineJs('relay-baseline/edge.js'), ['--id', `relay-edge-${i + 1}`, '--owners', ownerIds, '--redis-url', redisUrl, '--token', BASELINE_TOKEN]));
    }
    return {
      edges: edges.map((e) => `ws://127.0.0.1:${e.port}/v1/ws`),
      procs: [
        ...owners.map((w, i) => ({ id: `relay-owner-${i + 1}`, role: 'host', pid: w.proc.pid! })),
        ...edges.map((e, i) => ({ id: `relay-edge-${i + 1}`, role: 'edge', pid: e.proc.pid! })),
      ],
      children: [...edges.map((e) => e.proc), ...owners.map((w) => w.proc)],
    };
  });
  return runBaselineEcho(ctx, target, 'ws', RELAY_SYSTEM);
}
