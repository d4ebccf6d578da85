/**
 * `--baseline socketio`: bench/socketio-baseline/server.ts as one owner process and
 * `--edges` edge processes joined by @socket.io/redis-adapter.
 */
import type { Ctx } from '../measure.js';
import type { BenchResult } from '../result.js';
import { BASELINE_TOKEN, baselineJs, runBaselineEcho, spawnListening, startBaseline } from './baseline.js';

export const SOCKETIO_SYSTEM = 'socket.io + @socket.io/redis-adapter';

export async function runSocketIoBaseline(ctx: Ctx): Promise<BenchResult> {
  ctx.log('starting the Socket.IO baseline (Redis, owner process, edge process)…');
  const server = baselineJs('socketio-baseline/server.js');
  const target = await startBaseline(async (redisUrl) => {
    const start = (role: string, id: string): ReturnType<typeof spawnListening> =>
      spawnListening(server, ['--role', role, '--port', '0', '--redis-url', redisUrl, '--token', BASELINE_TOKEN, '--id', id]);
    const owner = await start('owner', 'sio-owner');
    const edges = [];
    for (let i = 0; i < ctx.o.edges; i++) edges.push(await start('edge', `sio-edge-${i + 1}`));
    return {
      edges: edges.map((e) => `http://127.0.0.1:${e.port}`),
      procs: [{ id: 'sio-owner', role: 'host', pid: owner.proc.pid! }, ...edges.map((e, i) => ({ id: `sio-edge-${i + 1}`, role: 'edge', pid: e.proc.pid! }))],
      children: [owner.proc, ...edges.map((e) => e.proc)],
    };
  });
  return runBaselineEcho(ctx, target, 'sio', SOCKETIO_SYSTEM);
}
