/**
 * The keeper process: holds the PTY masters of a node's terminals so the shells outlive
 * the node process (a crash, kill -9, an OOM kill, a drain for an upgrade).
 *
 *   node process ──unix socket (src/keeper/protocol.ts)──▶ keeper ──node-pty──▶ shells
 *        dies ✕                                             keeps reading, buffers
 *   next node process ──attach {from: log head}──────────▶ resends from there
 *
 * It is deliberately small: no Redis, no PostgreSQL, no HTTP. It knows nothing of
 * owners or logs beyond the epoch and offsets the node tells it. Per PTY it keeps the
 * output the node has not acknowledged (OutputBuffer), and stops reading a PTY whose
 * buffer is full: the program blocks on its writes, memory stays bounded.
 *
 * Lifetime: started detached by the first node that finds no keeper on the socket (or
 * run on its own: `switchboard keeper`). It exits when it has held no terminal and no
 * node for `idleExitMs`, and ends its terminals and exits when no node has been
 * connected for `orphanMs` (a node that never comes back). SIGTERM/SIGINT end every
 * terminal (SIGHUP to each process group) and exit.
 *
 * State of a PTY: attached(conn) ⇄ kept (no node: reading until full) → exited (output
 * and exit held until a node records them) → released (forgotten).
 */
import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { chmod, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PtyBackend } from '../backend/pty-backend.js';
import { SwitchboardError, toSwitchboardError } from '../errors/errors.js';
import type { NodeId, SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { BufferBudget, DEFAULT_BUFFER_BUDGET, OutputBuffer } from './output-buffer.js';
import {
  encodeKeeperFrame, FrameReader, KEEPER_PROTOCOL_VERSION,
  type AttachRequest, type BufferLimits, type KeeperToNode, type KeptExit, type KeptOrigin, type KeptSessionInfo,
  type NodeToKeeper, type SpawnRequest,
} from './protocol.js';

export interface KeeperOptions {
  socketPath: string;
  /** Exit after this long with no terminal and no node; 0: never. */
  idleExitMs: number;
  /** End every terminal and exit after this long with no node; 0: never. */
  orphanMs: number;
  logger: Logger;
}

/** How often idle and orphan time is checked. */
const CHECK_MS = 1_000;
/** SIGTERM ends terminals with SIGHUP, then SIGKILL after this. */
const STOP_GRACE_MS = 2_000;
/** Largest `data` frame: a PTY's reads of one event-loop turn go out together, up to this. */
const MAX_DATA_FRAME = 256 * 1024;
/** Input accounting is reported in steps of this much (InputEvent). */
const INPUT_REPORT_BYTES = 64 * 1024;
/** While input waits for a program, how often the keeper looks whether it drained. */
const INPUT_CHECK_MS = 50;
/**
 * Input held for a program that does not read, beyond which writes are dropped here:
 * the node bounds it far lower (MAX_QUEUED_INPUT_BYTES); this only guards the keeper.
 */
const MAX_KEPT_INPUT_BYTES = 8 * 1024 * 1024;

/** One node connection. */
class Connection {
  node: NodeId | null = null;
  private readonly reader = new FrameReader();

  constructor(readonly socket: Socket, private readonly keeper: Keeper) {
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = this.reader.push(chunk);
      } catch (err) {
        keeper.logger.warn('bad frame from a node; closing its connection', { err: String(err) });
        socket.destroy();
        return;
      }
      for (const m of messages) keeper.handle(this, m as NodeToKeeper);
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => keeper.disconnected(this));
  }

  send(message: KeeperToNode): void {
    if (!this.socket.destroyed) this.socket.write(encodeKeeperFrame(message));
  }
}

/** One PTY the keeper holds. */
class KeptPty {
  owner: Connection | null = null;
  private nodePaused = false;
  paused = false;
  exit: KeptExit | null = null;
  cols: number;
  rows: number;
  /** Next offset to send to the owner; output is sent once per turn, not per PTY read. */
  private sent = 0;
  private sendScheduled = false;
  /** Input bytes received since the owner attached, and what the owner was last told. */
  private inputReceived = 0;
  private told = { received: 0, queued: 0 };
  private inputTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly sid: SessionId,
    public epoch: number,
    readonly origin: KeptOrigin,
    readonly buffer: OutputBuffer,
    readonly pty: PtyBackend,
  ) {
    this.cols = origin.spec.cols;
    this.rows = origin.spec.rows;
    this.sent = buffer.total;
    pty.onData((data) => this.output(data));
    pty.onExit((exit) => this.exited(exit));
  }

  output(data: Uint8Array): void {
    if (this.exit) return;
    this.buffer.push(data);
    if (this.owner && !this.sendScheduled) {
      // A PTY is read in pieces of a few KiB: one frame per turn costs the node (and
      // this process) one decode and one write instead of dozens.
      this.sendScheduled = true;
      setImmediate(() => this.sendPending());
    }
    this.updatePause();
  }

  /** Everything from `sent` to the end, to the owner, in frames of at most MAX_DATA_FRAME. */
  private sendPending(): void {
    this.sendScheduled = false;
    const owner = this.owner;
    if (!owner || this.sent >= this.buffer.total) return;
    let off = this.sent;
    let parts: Uint8Array[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (bytes === 0) return;
      owner.send({ t: 'data', sid: this.sid, off, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes) });
      off += bytes;
      parts = [];
      bytes = 0;
    };
    for (const piece of this.buffer.from(this.sent)) {
      for (let at = 0; at < piece.length; at += MAX_DATA_FRAME) {
        const part = piece.subarray(at, Math.min(piece.length, at + MAX_DATA_FRAME));
        if (bytes + part.length > MAX_DATA_FRAME) flush();
        parts.push(part);
        bytes += part.length;
      }
    }
    flush();
    this.sent = this.buffer.total;
  }

  private exited(exit: KeptExit): void {
    const e: KeptExit = { code: exit.code };
    if (exit.signal) e.signal = exit.signal;
    this.exit = e;
    if (this.owner) {
      this.sendPending(); // the exit goes after the last byte
      this.owner.send({ t: 'exit', sid: this.sid, ...e });
    }
  }

  /** Input from the owner. node-pty queues what the program does not read yet. */
  write(data: Uint8Array): void {
    // Dropped input counts as received: it no longer waits anywhere.
    this.inputReceived += data.length;
    if (this.pty.inputQueued() <= MAX_KEPT_INPUT_BYTES) this.pty.write(data);
    this.reportInput();
  }

  /** Tells the owner about input in steps of INPUT_REPORT_BYTES; watches a queue until it drains. */
  private reportInput(): void {
    const queued = this.exit ? 0 : this.pty.inputQueued();
    const { told } = this;
    const due = this.inputReceived - told.received >= INPUT_REPORT_BYTES
      || Math.abs(queued - told.queued) >= INPUT_REPORT_BYTES
      || (queued === 0 && told.queued !== 0);
    if (due && this.owner) {
      this.told = { received: this.inputReceived, queued };
      this.owner.send({ t: 'input', sid: this.sid, received: this.inputReceived, queued });
    }
    if (queued > 0 && !this.inputTimer) {
      this.inputTimer = setTimeout(() => {
        this.inputTimer = undefined;
        this.reportInput();
      }, INPUT_CHECK_MS);
      this.inputTimer.unref();
    }
  }

  /** Resends output from `from` to `conn`, then the exit if the program ended. */
  attach(conn: Connection, epoch: number, from: number, limits: BufferLimits): void {
    this.buffer.rebase(from);
    this.buffer.maxBuffer = limits.maxBuffer;
    this.buffer.retain = limits.retain;
    const previous = this.owner;
    if (previous && previous !== conn) previous.send({ t: 'detached', sid: this.sid, reason: `attached by node ${conn.node} at epoch ${epoch}` });
    this.owner = conn;
    this.epoch = epoch;
    this.nodePaused = false;
    // Input is counted per attachment: the new owner starts at 0, told what still waits.
    this.inputReceived = 0;
    this.told = { received: 0, queued: 0 };
    this.reportInput();
    this.sent = from;
    this.sendPending();
    if (this.exit) conn.send({ t: 'exit', sid: this.sid, ...this.exit });
    this.updatePause();
  }

  detach(): void {
    this.owner = null;
    this.nodePaused = false;
    this.updatePause();
  }

  setNodePaused(paused: boolean): void {
    this.nodePaused = paused;
    this.updatePause();
  }

  confirm(off: number): void {
    this.buffer.confirm(off);
    this.updatePause();
  }

  /** Paused while the node asks, or while the buffer is full (whether a node is there or not). */
  updatePause(): void {
    if (this.exit) return;
    const pause = (this.owner !== null && this.nodePaused) || this.buffer.full;
    if (pause === this.paused) return;
    this.paused = pause;
    if (pause) this.pty.pause();
    else this.pty.resume();
  }

  info(asker: Connection): KeptSessionInfo {
    return {
      sid: this.sid, pid: this.pty.pid, epoch: this.epoch,
      start: this.buffer.start, total: this.buffer.total, confirmed: this.buffer.confirmed,
      paused: this.paused, attached: this.owner ? this.owner.node ?? '' : null, mine: this.owner === asker,
      exit: this.exit, buffered: this.buffer.bytes,
      spec: { ...this.origin.spec, cols: this.cols, rows: this.rows }, owner: this.origin.owner, createdAt: this.origin.createdAt,
    };
  }
}

export class Keeper {
  private server: Server | undefined;
  private readonly ptys = new Map<SessionId, KeptPty>();
  /** Output window lent beyond each terminal's floor; a node sets its size at spawn/attach. */
  private readonly budget = new BufferBudget(DEFAULT_BUFFER_BUDGET, () => {
    for (const pty of this.ptys.values()) pty.updatePause();
  });
  private readonly connections = new Set<Connection>();
  private timer: NodeJS.Timeout | undefined;
  /** Last time a node was connected (or the keeper started). */
  private nodeSeenAt = Date.now();
  /** Last time anything (a node or a terminal) was here. */
  private busyAt = Date.now();
  private stopping: Promise<void> | undefined;
  readonly startedAt = Date.now();
  onStopped: (() => void) | undefined;

  constructor(private readonly options: KeeperOptions) {}

  get logger(): Logger {
    return this.options.logger;
  }

  get pidFile(): string {
    return `${this.options.socketPath}.pid`;
  }

  /**
   * Takes the pid-file lock (one keeper per socket), removes a stale socket file and
   * listens with mode 0600. Throws KeeperRunning when another live keeper holds it.
   */
  async start(): Promise<void> {
    const { socketPath } = this.options;
    await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
    await this.lock();
    await rm(socketPath, { force: true });
    const server = createServer((socket) => this.connected(socket));
    // The umask closes the window between bind() and chmod(): nobody else may connect.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    await chmod(socketPath, 0o600);
    this.server = server;
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref(); // the listening socket keeps the process alive, not this timer
    this.logger.info('keeper listening', { socket: socketPath, pid: process.pid });
  }

  private async lock(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const file = await open(this.pidFile, 'wx', 0o600);
        await file.writeFile(`${process.pid}\n`);
        await file.close();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number((await readFile(this.pidFile, 'utf8').catch(() => '')).trim());
      // A live keeper holds it (or is starting and will listen in a moment). A pid file
      // left by a keeper that died names a dead process, or one that is not a keeper.
      if (pid > 0 && pid !== process.pid && isAlive(pid) && (await answers(this.options.socketPath) || await isKeeperProcess(pid))) {
        throw new KeeperRunning(pid);
      }
      await rm(this.pidFile, { force: true });
    }
    throw new Error(`cannot take the keeper lock ${this.pidFile}`);
  }

  private connected(socket: Socket): void {
    const conn = new Connection(socket, this);
    this.connections.add(conn);
  }

  disconnected(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    let kept = 0;
    for (const pty of this.ptys.values()) {
      if (pty.owner === conn) {
        pty.detach();
        kept++;
      }
    }
    if (conn.node !== null) {
      this.nodeSeenAt = Date.now();
      this.logger.info('node connection closed', { node: conn.node, kept });
    }
  }

  handle(conn: Connection, m: NodeToKeeper): void {
    if (conn.node === null && m.t !== 'hello') {
      conn.socket.destroy();
      return;
    }
    try {
      switch (m.t) {
        case 'hello': {
          if (typeof m.node !== 'string' || typeof m.v !== 'number' || m.v < 1) throw new SwitchboardError('bad_frame', 'hello needs a node id and a protocol version');
          conn.node = m.node;
          this.nodeSeenAt = Date.now();
          this.logger.info('node connected', { node: m.node, pid: m.pid, terminals: this.ptys.size });
          conn.send({ t: 'reply', id: m.id, ok: true, pid: process.pid, v: KEEPER_PROTOCOL_VERSION, startedAt: this.startedAt });
          return;
        }
        case 'spawn':
          this.spawn(conn, m);
          return;
        case 'attach':
          this.attach(conn, m);
          return;
        case 'detach': {
          const pty = this.owned(conn, m.sid);
          pty.detach();
          this.logger.info('terminal handed to the keeper', { sid: m.sid, node: conn.node });
          conn.send({ t: 'reply', id: m.id, ok: true });
          return;
        }
        case 'discard': {
          const pty = this.ptys.get(m.sid);
          let discarded = false;
          if (pty && (pty.owner === conn || (pty.owner === null && m.below !== undefined && pty.epoch < m.below))) {
            this.end(pty, 'SIGKILL');
            discarded = true;
            this.logger.info('terminal discarded', { sid: m.sid, node: conn.node, epoch: pty.epoch, below: m.below });
          }
          conn.send({ t: 'reply', id: m.id, ok: true, discarded });
          return;
        }
        case 'list':
          conn.send({
            t: 'reply', id: m.id, ok: true, nodes: this.nodeIds(),
            sessions: [...this.ptys.values()].filter((p) => !m.unattached || p.owner === null).map((p) => p.info(conn)),
          });
          return;
        default:
          this.message(conn, m);
      }
    } catch (err) {
      const id = (m as { id?: unknown }).id;
      if (typeof id === 'number') {
        const e = toSwitchboardError(err);
        conn.send({ t: 'reply', id, ok: false, code: e.code, msg: e.message });
      } else {
        this.logger.debug('message refused', { t: m.t, err: String(err) });
      }
    }
  }

  /** Messages without a reply: only from the connection the PTY is attached to. */
  private message(conn: Connection, m: NodeToKeeper): void {
    if (!('sid' in m)) return;
    const pty = this.ptys.get(m.sid);
    if (!pty || pty.owner !== conn) return;
    switch (m.t) {
      case 'write':
        pty.write(m.data);
        break;
      case 'resize':
        pty.cols = m.cols;
        pty.rows = m.rows;
        pty.pty.resize(m.cols, m.rows);
        break;
      case 'pause':
        pty.setNodePaused(true);
        break;
      case 'resume':
        pty.setNodePaused(false);
        break;
      case 'kill':
        pty.pty.kill(m.signal);
        break;
      case 'ack':
        pty.confirm(m.off);
        break;
      case 'note':
        pty.output(Buffer.from(m.data));
        break;
      case 'release':
        if (pty.exit) this.forget(pty);
        break;
    }
  }

  private spawn(conn: Connection, m: SpawnRequest): void {
    if (this.ptys.has(m.sid)) throw new SwitchboardError('conflict', `the keeper holds session ${m.sid} already`);
    this.setBudget(m);
    const pty = new PtyBackend(m.spec);
    const buffer = new OutputBuffer(m.base, m.maxBuffer, m.retain, this.budget);
    const kept = new KeptPty(m.sid, m.epoch, { spec: m.spec, owner: m.owner, createdAt: m.createdAt }, buffer, pty);
    kept.owner = conn;
    this.ptys.set(m.sid, kept);
    this.logger.info('terminal started', { sid: m.sid, pid: pty.pid, node: conn.node, epoch: m.epoch, base: m.base });
    conn.send({ t: 'reply', id: m.id, ok: true, pid: pty.pid });
  }

  private attach(conn: Connection, m: AttachRequest): void {
    const pty = this.ptys.get(m.sid);
    if (!pty) throw new SwitchboardError('not_found', `the keeper holds no session ${m.sid}`);
    if (m.epoch < pty.epoch) throw new SwitchboardError('conflict', `session ${m.sid}: epoch ${m.epoch} is fenced off; the keeper saw epoch ${pty.epoch}`);
    this.setBudget(m);
    try {
      pty.attach(conn, m.epoch, m.from, m);
    } catch (err) {
      if (err instanceof RangeError) throw new SwitchboardError('conflict', `session ${m.sid}: ${err.message}`);
      throw err;
    }
    this.logger.info('terminal attached', { sid: m.sid, node: conn.node, epoch: m.epoch, from: m.from, total: pty.buffer.total });
    conn.send({ t: 'reply', id: m.id, ok: true, pid: pty.pty.pid, start: pty.buffer.start, total: pty.buffer.total });
  }

  private owned(conn: Connection, sid: SessionId): KeptPty {
    const pty = this.ptys.get(sid);
    if (!pty) throw new SwitchboardError('not_found', `the keeper holds no session ${sid}`);
    if (pty.owner !== conn) throw new SwitchboardError('conflict', `session ${sid} is not attached to this node`);
    return pty;
  }

  /** The budget is one per keeper; the last node to spawn or attach names its size. */
  private setBudget(limits: BufferLimits): void {
    if (limits.budget === undefined || limits.budget === this.budget.limit) return;
    this.budget.limit = limits.budget;
    this.budget.add(0); // spent or lendable again under the new limit
  }

  private forget(pty: KeptPty): void {
    this.ptys.delete(pty.sid);
    pty.buffer.release();
  }

  /** Kills a terminal and forgets it at once (its exit is not wanted). */
  private end(pty: KeptPty, signal: string): void {
    this.forget(pty);
    pty.owner = null;
    pty.pty.kill(signal);
  }

  private nodeIds(): NodeId[] {
    return [...new Set([...this.connections].map((c) => c.node).filter((n): n is NodeId => n !== null))];
  }

  private check(): void {
    const now = Date.now();
    const hasNode = [...this.connections].some((c) => c.node !== null);
    if (hasNode) this.nodeSeenAt = now;
    if (hasNode || this.ptys.size > 0 || this.connections.size > 0) this.busyAt = now;
    const { idleExitMs, orphanMs } = this.options;
    if (idleExitMs > 0 && now - this.busyAt >= idleExitMs) {
      this.logger.info('no terminals and no node: exiting', { idleMs: now - this.busyAt });
      void this.stop();
    } else if (orphanMs > 0 && !hasNode && this.ptys.size > 0 && now - this.nodeSeenAt >= orphanMs) {
      this.logger.warn('no node came back: ending the terminals kept', { terminals: this.ptys.size, orphanMs });
      void this.stop();
    }
  }

  /** Ends every terminal (SIGHUP, then SIGKILL), closes the socket, removes the lock. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      this.server?.close();
      for (const conn of this.connections) conn.socket.destroy();
      const ptys = [...this.ptys.values()];
      const exited = Promise.all(ptys.map((p) => p.exit ? Promise.resolve() : new Promise<void>((resolve) => p.pty.onExit(() => resolve()))));
      for (const p of ptys) p.pty.kill('SIGHUP');
      await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
      for (const p of ptys) if (!p.exit) p.pty.kill('SIGKILL');
      this.ptys.clear();
      await rm(this.options.socketPath, { force: true });
      await rm(this.pidFile, { force: true });
      this.logger.info('keeper stopped', { terminals: ptys.length });
      this.onStopped?.();
    })();
    return this.stopping;
  }
}

/** Another live keeper holds the socket. */
export class KeeperRunning extends Error {
  constructor(readonly pid: number) {
    super(`a keeper (pid ${pid}) is running on this socket already`);
    this.name = 'KeeperRunning';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `pid` runs a keeper (Linux /proc); true when that cannot be read. */
async function isKeeperProcess(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('keeper');
  } catch {
    return true;
  }
}

/** True when something accepts a connection on the socket. */
export async function answers(socketPath: string): Promise<boolean> {
  try {
    await stat(socketPath);
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
