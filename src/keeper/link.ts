/**
 * The node's link to its keeper: connects to the keeper socket, starts a keeper when
 * none answers (mode `auto`), and reconnects (starting a new keeper) after one died.
 *
 *   mode auto:     connect ─fails─▶ spawn `switchboard keeper` detached (own session and
 *                  process group, its own log file) ─▶ connect again until it answers
 *   mode external: connect, retrying until startTimeoutMs (a keeper container or unit
 *                  runs it); never starts one
 *
 * The socket lives in a directory only this user may enter (mode 0700) and is itself
 * mode 0600: whoever can connect can type into every shell.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { sessionEnvironment } from '../backend/env.js';
import type { NodeId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { KeeperClient } from './client.js';
import { defaultKeeperDir } from './paths.js';

export type KeeperMode = 'auto' | 'external' | 'off';
export type KeeperState = 'up' | 'down' | 'off';

export interface KeeperLinkOptions {
  socketPath: string;
  nodeId: NodeId;
  mode: 'auto' | 'external';
  logger: Logger;
  /** Passed to a keeper this node starts (see Keeper). */
  idleExitMs: number;
  orphanMs: number;
  logLevel: string;
  /** How long start() waits for a keeper to answer. */
  startTimeoutMs?: number;
  /** The keeper went away or answers again (the node tells the registry at once). */
  onStateChange?: (state: KeeperState) => void;
}

const START_TIMEOUT_MS = 10_000;
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5_000;

export class KeeperLink {
  private current: KeeperClient | undefined;
  private connecting: Promise<KeeperClient> | undefined;
  private closing = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelay = RECONNECT_FIRST_MS;
  /** Times this node started a keeper. */
  launches = 0;

  constructor(readonly options: KeeperLinkOptions) {}

  get state(): KeeperState {
    return this.current && !this.current.closed ? 'up' : 'down';
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  /** Resolves once a keeper answers (started by us in mode auto); rejects with what to do. */
  async start(): Promise<void> {
    await this.client();
  }

  /** The connected client, connecting (and in mode auto starting a keeper) if needed. */
  client(): Promise<KeeperClient> {
    if (this.current && !this.current.closed) return Promise.resolve(this.current);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<KeeperClient> {
    const { socketPath, mode, nodeId } = this.options;
    if (this.closing) throw new Error('the keeper link is closed');
    // The default directory is ours to check; an explicit path is the operator's (a volume).
    if (dirname(socketPath) === defaultKeeperDir()) await privateDirectory(dirname(socketPath));
    const deadline = Date.now() + (this.options.startTimeoutMs ?? START_TIMEOUT_MS);
    let launched = false;
    let lastError: unknown;
    for (;;) {
      try {
        const client = await KeeperClient.connect(socketPath, nodeId);
        this.attach(client);
        return client;
      } catch (err) {
        lastError = err;
      }
      if (this.closing) throw new Error('the keeper link is closed');
      if (mode === 'auto' && !launched) {
        await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
        this.launch();
        launched = true;
      }
      if (Date.now() > deadline) {
        const what = mode === 'auto'
          ? `a keeper started by this node did not answer on ${socketPath} (its log: ${socketPath}.log)`
          : `no keeper answers on ${socketPath}; start one (switchboard keeper --socket ${socketPath}) or set SWITCHBOARD_KEEPER=auto`;
        throw new Error(`${what}: ${String(lastError)}. SWITCHBOARD_KEEPER=off runs terminals inside the node instead (they end with it)`);
      }
      await sleep(50);
    }
  }

  private attach(client: KeeperClient): void {
    this.current = client;
    this.reconnectDelay = RECONNECT_FIRST_MS;
    this.options.logger.info('keeper connected', { socket: this.options.socketPath, pid: client.keeperPid, v: client.keeperVersion });
    this.options.onStateChange?.('up');
    client.onClose((reason) => {
      if (this.current !== client) return;
      this.current = undefined;
      if (this.closing) return;
      this.options.logger.warn('keeper connection lost', { reason, socket: this.options.socketPath });
      this.options.onStateChange?.('down');
      this.scheduleReconnect();
    });
  }

  /** A keeper that died is replaced, so new terminals can start (the old ones are gone). */
  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closing) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.client().catch((err) => {
        this.options.logger.warn('keeper reconnect failed', { err: String(err) });
        this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
        this.scheduleReconnect();
      });
    }, this.reconnectDelay);
    this.reconnectTimer.unref();
  }

  /** Starts `switchboard keeper` detached: its own session, so it outlives this process. */
  private launch(): void {
    const { socketPath, nodeId, idleExitMs, orphanMs, logLevel } = this.options;
    const main = mainScript();
    const log = openSync(`${socketPath}.log`, 'a', 0o600);
    try {
      const child = spawn(process.execPath, [
        main, 'keeper', '--socket', socketPath, '--node-id', nodeId,
        '--idle-exit-ms', String(idleExitMs), '--orphan-ms', String(orphanMs), '--log-level', logLevel,
      ], {
        detached: true,
        stdio: ['ignore', log, log],
        // The keeper, and through it every shell, gets only the allowlisted environment:
        // tokens and database URLs of the node never reach it.
        env: sessionEnvironment(undefined),
        cwd: '/',
      });
      child.on('error', (err) => this.options.logger.warn('starting the keeper failed', { err: String(err) }));
      child.unref();
      this.launches++;
      this.options.logger.info('keeper started', { socket: socketPath, pid: child.pid });
    } finally {
      closeSync(log);
    }
  }

  close(): void {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    this.current?.close();
    this.current = undefined;
  }
}

/** The CLI entry point this code was built with (dist/cli/main.js), also when run from src. */
function mainScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../cli/main.js'), join(here, '../../dist/cli/main.js')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`cannot find the switchboard CLI to start a keeper (looked for ${candidates.join(', ')}); build first`);
  return found;
}

/** Creates the socket directory (mode 0700) and refuses one another user could enter. */
async function privateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to another user: refusing to put the keeper socket there (set SWITCHBOARD_KEEPER_SOCKET)`);
  if ((st.mode & 0o077) !== 0) throw new Error(`${dir} is open to other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it or set SWITCHBOARD_KEEPER_SOCKET`);
}
