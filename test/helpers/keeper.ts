/**
 * Keepers for tests: every node a test starts gets its keeper socket in this test
 * process's own temp directory (one per node id, so a node restarted with the same id
 * finds its keeper), and every keeper started there is killed when the test process
 * exits, with the shells it held. A probe speaks the keeper protocol to look inside.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeeperClient } from '../../src/keeper/client.js';
import type { KeptSessionInfo } from '../../src/keeper/protocol.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-keepers-'));
const sockets = new Set<string>();
let counter = 0;

/** The socket of node `id` in this test process. */
export function keeperSocketFor(id: string): string {
  const path = join(dir, `${id}.sock`);
  sockets.add(path);
  return path;
}

/** A socket nobody else uses (in-process nodes all share one default node id). */
export function uniqueKeeperSocket(): string {
  return keeperSocketFor(`inproc-${process.pid}-${++counter}`);
}

/** The pid of the keeper serving `socket` (from its pid file), or undefined. */
export function keeperPid(socket: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${socket}.pid`, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The keeper's log (it writes next to its socket when a node started it). */
export function keeperLog(socket: string): string {
  try {
    return readFileSync(`${socket}.log`, 'utf8');
  } catch {
    return '';
  }
}

process.on('exit', () => {
  for (const socket of sockets) {
    const pid = keeperPid(socket);
    if (pid !== undefined && isAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A connection to a keeper that only looks: `list` what it holds. */
export class KeeperProbe {
  private constructor(private readonly client: KeeperClient) {}

  static async connect(socket: string): Promise<KeeperProbe> {
    return new KeeperProbe(await KeeperClient.connect(socket, 'test-probe'));
  }

  async list(): Promise<KeptSessionInfo[]> {
    const reply = await this.client.request({ t: 'list' });
    return reply.sessions as KeptSessionInfo[];
  }

  async session(sid: string): Promise<KeptSessionInfo | undefined> {
    return (await this.list()).find((s) => s.sid === sid);
  }

  close(): void {
    this.client.close();
  }
}
