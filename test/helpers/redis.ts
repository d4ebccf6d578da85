/**
 * Private redis-server processes for tests: each on a free port in its own temp dir,
 * never the machine's shared Redis, so a test may kill, restart and flush it freely.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, rawCommand, until as untilShared } from '../../src/launcher/processes.js';

const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
const REDIS_CLI = process.env.REDIS_CLI ?? '/usr/bin/redis-cli';
const START_DEADLINE_MS = 10_000;
const run = promisify(execFile);

export interface RedisServer {
  url: string;
  port: number;
  /** Terminates the server and removes its directory. */
  stop(): Promise<void>;
  /** Sends a signal (default SIGKILL: a crash) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port (empty: nothing is saved). */
  restart(): Promise<void>;
  /** Sends a signal without waiting for an exit (SIGSTOP / SIGCONT: a stall). */
  signal(signal: NodeJS.Signals): Promise<void>;
}

// Shared with the local cluster launcher: one implementation of each.
export { freePort };

/** Polls `check` until it returns true; throws after `ms`. For "until X" waits only. */
export function until(check: () => boolean | Promise<boolean>, what = 'condition', ms = 10_000): Promise<void> {
  return untilShared(check, what, ms);
}

async function waitForPing(port: number): Promise<void> {
  await until(async () => (await rawCommand(port, 'PING')) === '+PONG\r\n', `redis on port ${port}`, START_DEADLINE_MS);
}

// Servers still running when the test process exits (a crash, a bail-out) die with it.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function spawnServer(port: number, dir: string, extra: string[] = []): ChildProcess {
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
    { stdio: 'ignore' },
  );
  live.add(child);
  child.on('exit', () => live.delete(child));
  child.unref();
  return child;
}

async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // Children are unref'ed so a running server never keeps tap's root test from ending;
  // while we wait for this one to exit, it must hold the event loop.
  child.ref();
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-redis-'));
  const port = await freePort();
  let child = spawnServer(port, dir);
  await waitForPing(port);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async kill(signal = 'SIGKILL') {
      await killChild(child, signal);
    },
    async restart() {
      await killChild(child, 'SIGKILL');
      child = spawnServer(port, dir);
      await waitForPing(port);
    },
    async signal(signal) {
      child.kill(signal);
    },
    async stop() {
      await killChild(child, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  /** host:port of each master, the seeds for ioredis's Cluster. */
  nodes: Array<{ host: string; port: number }>;
  urls: string[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, slots spread by redis-cli --cluster create. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(children.map((c) => killChild(c, 'SIGTERM')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      // The cluster bus port defaults to port + 10000, which may be taken or past 65535:
      // pick it explicitly.
      const [port, busPort] = [await freePort(), await freePort()];
      ports.push(port);
      children.push(spawnServer(port, dir, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${port}.conf`,
        '--cluster-port', String(busPort),
      ]));
    }
    await Promise.all(ports.map(waitForPing));
    await run(REDIS_CLI, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await until(async () => (await rawCommand(port, 'CLUSTER INFO'))?.includes('cluster_state:ok') ?? false, `cluster state ok on ${port}`, START_DEADLINE_MS);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    urls: ports.map((port) => `redis://127.0.0.1:${port}`),
    stop,
  };
}
