/**
 * What the baselines share: a private Redis, server processes that print
 * `listening <port>` when they serve, and the same echo measurement Switchboard gets
 * (same load generator, same schedule, same CPU window), so the two sit side by side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, startRedis } from '../../src/launcher/local-cluster.js';
import { hasExited, stopChild } from '../../src/launcher/processes.js';
import type { Transport } from '../loadgen-protocol.js';
import { echoSpecs, measureTyping, type Ctx } from '../measure.js';
import { LoadPool, workerCount } from '../pool.js';
import type { WatchedProc } from '../proc-stats.js';
import type { BenchResult } from '../result.js';
import { settleDisk, type Target } from '../target.js';

export const BASELINE_TOKEN = 'baseline-token';

/** A compiled baseline script under dist/bench/. */
export function baselineJs(path: string): string {
  return join(REPO_ROOT, 'dist', 'bench', path);
}

// Baseline servers still running when the bench exits (a crash, a stop signal) die with
// it, and their temp dirs go (only synchronous work is possible in an exit handler).
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const child of live) if (!hasExited(child)) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Runs `node script args…` and waits for its `listening <port>` line. */
export async function spawnListening(script: string, args: string[]): Promise<{ port: number; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`${script} exited (${code}) before listening`)));
  });
  return { port, proc };
}

export interface BaselineServers {
  edges: string[];
  procs: WatchedProc[];
  children: ChildProcess[];
}

/** A private Redis, then `start(redisUrl)`'s servers; a Target for the measurement. */
export async function startBaseline(start: (redisUrl: string) => Promise<BaselineServers>): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-baseline-'));
  dirs.add(dir);
  const redis = await startRedis(dir);
  const stop = async (children: ChildProcess[]): Promise<void> => {
    for (const p of children) await stopChild(p, 'SIGTERM');
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };
  let servers: BaselineServers;
  try {
    servers = await start(redis.url);
  } catch (err) {
    await stop([...live]);
    throw err;
  }
  await settleDisk();
  return {
    edges: servers.edges,
    token: BASELINE_TOKEN,
    procs: [...servers.procs, { id: 'redis', role: 'redis', pid: redis.pid }],
    http: '',
    redisUrl: redis.url,
    stop: () => stop(servers.children),
  };
}

/** The echo measurement against a baseline target; `system` names it in the result. */
export async function runBaselineEcho(ctx: Ctx, target: Target, transport: Transport, system: string): Promise<BenchResult> {
  const { o } = ctx;
  const load = new LoadPool(workerCount(o.workers, o.sessions), transport);
  try {
    ctx.log(`baseline (${system}): connecting ${o.sessions} clients…`);
    const c = await load.connect(echoSpecs(target, o.sessions), target.token, transport === 'sio' ? 100 : 200);
    if (c.failed) ctx.log(`baseline: ${c.failed} connections failed: ${c.errors[0]}`);
    const r = await measureTyping(ctx, target, load, o.sessions, o.rate, { connectFailed: c.failed });
    r.parameters = { ...r.parameters, system };
    return r;
  } finally {
    await load.close();
    await target.stop();
  }
}
