/**
 * Nodes as real child processes (`node dist/cli/main.js serve`), so tests can kill -9,
 * SIGSTOP and SIGCONT them. Needs `npm run build` first (npm test's pretest does it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { TEST_TOKEN } from './node.js';
import { freePort } from './redis.js';
import { keeperSocketFor } from './keeper.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface NodeProcess {
  id: string;
  port: number;
  url: string;
  http: string;
  proc: ChildProcess;
  /** Everything the node wrote to stderr (JSON log lines). */
  logs: string[];
  exited: Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export async function spawnNode(id: string, env: Record<string, string>, flags: string[] = []): Promise<NodeProcess> {
  const port = await freePort();
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', String(port), '--node-id', id, ...flags], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', SWITCHBOARD_TOKEN: TEST_TOKEN, SWITCHBOARD_LOG_LEVEL: 'info',
      // The node's keeper lives in this test's temp dir and dies with the test process.
      SWITCHBOARD_KEEPER_SOCKET: keeperSocketFor(id),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => logs.push(...d.split('\n').filter(Boolean)));
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('listening on')) {
        proc.stdout!.off('data', onData);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`node ${id} exited (${code}) before listening: ${logs.join('\n')}`)));
  });
  proc.stdout!.resume();
  return {
    id, port, proc, logs, exited,
    url: `ws://127.0.0.1:${port}/v1/ws`,
    http: `http://127.0.0.1:${port}`,
    signal: (sig) => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGCONT');
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
