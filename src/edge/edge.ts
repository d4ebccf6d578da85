/**
 * The edge role: protocol v1 for the clients connected to this node. Its only state is
 * which local sockets watch which sessions, rebuilt by reconnects.
 *
 *   client ──frame──▶ edge ──sessionControl(sid)──▶ owner host
 *   owner ──log.append = store + publish sessionEvents(sid)──▶ edge ──same bytes──▶ clients
 *   late or lagging clients catch up from the log, then switch to live events.
 *
 * Frames of one connection take effect in the order sent. `in`, `resize`, `ack`,
 * `detach` and `ping` act synchronously; `open`, `attach` and `kill` need round trips,
 * and while one of them is taking effect the connection's later frames wait (bounded,
 * limits.ts) and then run in order:
 *
 *   frames: open ─ in ─ in ─ ping        open ──place──▶ register writer ─▶ opened ─┐
 *                  └─ held ─┘                                                      │
 *                     in, in, ping run now, in order ◀────────────────────────────┘
 *
 * Expensive work is admitted node-wide: placements through a Gate, screen snapshots
 * through a worker-thread pool, each with a bounded queue and `unavailable` beyond it.
 */
import type { Bus, Unsubscribe } from '../bus/bus.js';
import { nodeInbox, sessionControl, sessionEvents } from '../bus/channels.js';
import type { SessionLog } from '../log/log.js';
import type { NodeInfo, Registry } from '../registry/registry.js';
import type { SessionRecord, Store } from '../store/store.js';
import { decodeMessage, encodeFrame, encodeValue, peekOut, type OutLayout } from '../protocol/codec.js';
import type { AttachFrame, ClientFrame, KillFrame, OpenFrame, Role, ServerFrame } from '../protocol/frames.js';
import { parseClientFrame, salvageRef } from '../protocol/parse.js';
import { BACKEND_RETRY_MS, CLOSE, SwitchboardError, toSwitchboardError, unreachable } from '../errors/errors.js';
import { OutputHistory, REPLAY_STEP_BYTES, type Transcript } from './history.js';
import type { ClientId, Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import { newSessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { ControlMessage, InputCommand, OpenRequest, WatchCommand } from '../node/messages.js';
import type { Rpc } from '../node/rpc.js';
import { MemoryLimiter } from '../limit/memory-limiter.js';
import { Attachment } from './attachment.js';
import { ControlOutbox } from './control-outbox.js';
import { dropReporter, type DropReporter } from '../util/dropped.js';
import { ClientConn, type SocketLike } from './client-conn.js';
import { pickHost } from './placement.js';
import { Gate } from './gate.js';
import { SnapshotPool } from './snapshot-pool.js';
import {
  DEFAULT_EDGE_LIMITS, HELD_BYTES_MAX, HELD_FRAMES_MAX, HELD_OVERFLOW_LIMIT, HELD_OVERFLOW_WINDOW_MS,
  OPEN_WAIT_MS, SNAPSHOT_TIMEOUT_MS, SNAPSHOT_WAIT_MS, type EdgeLimits,
} from './limits.js';
import type { Metrics } from '../node/metrics.js';
import { UNCHECKED_ACCESS, type SessionAccess } from '../auth/access.js';
import { checkAttach, checkKill, checkOpen, checkShare, type Principal } from '../auth/principal.js';

/** Bad frames within BAD_FRAME_WINDOW_MS before the connection is closed 1008. */
const BAD_FRAME_LIMIT = 20;
const BAD_FRAME_WINDOW_MS = 10_000;
const OPEN_TIMEOUT_MS = 10_000;
/** Frames refused for the byte budget within BAD_FRAME_WINDOW_MS before the connection is closed 1008. */
const OVER_BUDGET_LIMIT = 20;

/** A connection's byte budget: a token bucket refilled at the configured rate. */
interface ByteBucket {
  tokens: number;
  at: number;
  refusals: number;
  refusalsSince: number;
}
const KILL_TIMEOUT_MS = 5_000;
/** Retry hint for input sent while a session has no owner: about one reaper pass. */
const NO_OWNER_RETRY_MS = 500;
/** Input held per session while it has no owner, and for how long at most. */
const HELD_INPUT_BYTES = 64 * 1024;
const HELD_INPUT_MS = 10_000;
/** Input queued per session behind a publish still in flight (a slow bus). */
const QUEUED_INPUT_BYTES = 1024 * 1024;
/** Seconds between registry reads that tell whether every host takes batched input. */
const HOSTS_READ_TICKS = 5;
/**
 * Most output a screen snapshot replays (the newest bytes of the window): parsing costs
 * ~200 ms of CPU per MiB whatever the replay window is configured to.
 */
const SNAPSHOT_WINDOW_BYTES = 1024 * 1024;

export interface EdgeOptions {
  nodeId: NodeId;
  highWatermark: number;
  lowWatermark: number;
  /** Send buffer past which a socket stops getting live output and must catch up. */
  lagLimit: number;
  frameRate: number;
  /**
   * Bytes per second a connection may send, and the burst it may send at once: a token
   * bucket checked before a frame is decoded. Defaults: 1 MiB/s, 4 MiB.
   */
  connectionBytesRate?: number;
  connectionBytesBurst?: number;
  /** Admission limits (from the config: edgeLimits(config)); defaults when absent. */
  limits?: EdgeLimits;
}

export interface EdgeDeps {
  bus: Bus;
  log: SessionLog;
  store: Store;
  registry: Registry;
  rpc: Rpc;
  logger: Logger;
  metrics: Metrics;
}

/** The edge's view of a session some local client watches. */
interface Watched {
  sid: SessionId;
  attachments: Set<Attachment>;
  unsubscribe: Unsubscribe | undefined;
  ready: Promise<void>;
  paused: boolean;
}

export class Edge {
  private nextClientId: ClientId = 1;
  readonly clients = new Map<ClientId, ClientConn>();
  private readonly watched = new Map<SessionId, Watched>();
  private readonly history: OutputHistory;
  private readonly frameLimiter = new MemoryLimiter();
  /** Per-connection byte budgets (kept off ClientConn; gone with the connection). */
  private readonly byteBuckets = new WeakMap<ClientConn, ByteBucket>();
  private limits: EdgeLimits = DEFAULT_EDGE_LIMITS;
  private opens!: Gate;
  private snapshots!: SnapshotPool;
  private opensRefused = 0;
  private snapshotsRefused = 0;
  /** Per-principal limits and the audit trail (src/auth/access.ts); the server sets them. */
  private access: SessionAccess = UNCHECKED_ACCESS;
  /** Writes given up on are logged (rate-limited), never dropped silently. */
  private readonly dropped: DropReporter;
  /** The registry read in flight, if any, shared by concurrent opens. */
  private nodesRead: Promise<NodeInfo[]> | undefined;
  /** Input and resizes to owners, in order across takeovers (held while a session has none). */
  private readonly outbox = new ControlOutbox(
    { maxBytesPerSession: HELD_INPUT_BYTES, maxAgeMs: HELD_INPUT_MS, maxQueuedBytesPerSession: QUEUED_INPUT_BYTES },
    {
      publish: (sid, payload) => this.deps.bus.publish(sessionControl(sid), payload),
      watches: (sid) => this.watched.has(sid),
      refuse: (item, sid, why) => this.refuseInput(item.client, sid, why),
      busFailed: (item, sid, err) => this.sendError(item.client, new SwitchboardError('unavailable', 'the message bus is unreachable; input was not delivered, try again', { retryMs: BACKEND_RETRY_MS, cause: err }), undefined, sid),
    },
  );
  private holdTimer: NodeJS.Timeout | undefined;
  /** Writers above the high watermark: each pauses its session for everyone. */
  private readonly pausing = new Set<Attachment>();

  constructor(private readonly options: EdgeOptions, private readonly deps: EdgeDeps) {
    this.dropped = dropReporter(deps.logger);
    this.history = new OutputHistory(deps);
    this.configure(options.limits ?? DEFAULT_EDGE_LIMITS);
    const m = deps.metrics;
    m.register('switchboard_open_queue', 'Opens waiting for a placement slot on this edge', 'gauge', () => this.opens.queued);
    m.register('switchboard_opens_refused_total', 'Opens refused unavailable: placement queue full', 'counter', () => this.opensRefused);
    m.register('switchboard_control_batching', 'Whether this edge sends input queued behind a publish as one batch: 1 once every live host takes batches (0 during a rollout from older hosts)', 'gauge', () => (this.outbox.batching ? 1 : 0));
    m.register('switchboard_snapshot_queue', 'Screen snapshots waiting for a worker thread', 'gauge', () => this.snapshots.queued);
    m.register('switchboard_snapshots_refused_total', 'Attaches refused unavailable: snapshot queue full', 'counter', () => this.snapshotsRefused);
    m.register('switchboard_snapshot_failures_total', 'Snapshots that failed (worker error or timeout) and fell back to a replay', 'counter', () => this.snapshots.failures);
  }

  /**
   * Sets the admission limits (the wiring passes edgeLimits(config)). Work already
   * admitted finishes under the old limits.
   */
  configure(limits: EdgeLimits): void {
    this.limits = { ...limits };
    this.opens = new Gate(limits.openConcurrency, limits.openQueue, OPEN_WAIT_MS, (waited) => new SwitchboardError(
      'unavailable',
      `waited ${waited} ms for a turn to place the session: this node is overloaded with opens; retry in ${this.opens.retryMs(1000)} ms`,
      { retryMs: this.opens.retryMs(1000) },
    ));
    const old = this.snapshots as SnapshotPool | undefined;
    this.snapshots = new SnapshotPool({
      workers: limits.snapshotWorkers, queue: limits.snapshotQueue, timeoutMs: SNAPSHOT_TIMEOUT_MS, maxWaitMs: SNAPSHOT_WAIT_MS,
    });
    old?.close();
  }

  useAccess(access: SessionAccess): void {
    this.access = access;
  }

  start(): void {
    let ticks = 0;
    this.holdTimer = setInterval(() => {
      this.outbox.expire();
      this.detachSlowWriters();
      if (++ticks % HOSTS_READ_TICKS === 0) void this.liveNodes().catch(() => {});
    }, 1_000);
    void this.liveNodes().catch(() => {});
    this.holdTimer.unref();
    this.deps.bus.onRestore(() => {
      // Events published while the bus was down are lost: catch everyone up from the log.
      for (const w of this.watched.values()) {
        for (const a of w.attachments) if (a.state === 'live') void this.catchUp(a);
        this.sendWatch(w);
      }
    });
  }

  get sessionCount(): number {
    return this.watched.size;
  }

  /** How many output bytes each session has produced (its log head), null when unknown. */
  async outputBytes(sids: readonly SessionId[]): Promise<Array<number | null>> {
    return Promise.all(sids.map((sid) => this.deps.log.bounds(sid).then((b) => b?.head ?? null, () => null)));
  }

  // ─── connections ──────────────────────────────────────────────────────────

  connect(socket: SocketLike, principal: Principal, ip: string): ClientConn {
    const client = new ClientConn(this.nextClientId++, principal, socket, ip);
    this.clients.set(client.id, client);
    this.deps.metrics.clients.set(this.clients.size);
    return client;
  }

  disconnect(client: ClientConn): void {
    client.closed = true;
    client.held = [];
    client.heldBytes = 0;
    for (const a of [...client.attachments.values()]) this.detach(a);
    this.clients.delete(client.id);
    this.deps.metrics.clients.set(this.clients.size);
  }

  /** The socket's send buffer drained: resume lagging attachments and lift pauses. */
  drained(client: ClientConn): void {
    for (const a of client.attachments.values()) {
      if (a.state === 'lagging') void this.catchUp(a);
      this.updateFlow(a);
    }
  }

  /** The owner applied input `n` from one of our clients. */
  inputAck(clientId: ClientId, sid: SessionId, n: number): void {
    const client = this.clients.get(clientId);
    if (client) this.send(client, { t: 'ack', sid, n });
  }

  /** The owner dropped input of one of our clients: its program is not reading. */
  inputRefused(clientId: ClientId, sid: SessionId, msg: string, retryMs: number): void {
    const client = this.clients.get(clientId);
    if (!client) return;
    this.deps.metrics.rateLimited.inc();
    this.sendError(client, new SwitchboardError('rate_limited', msg, { retryMs }), undefined, sid);
  }

  private send(client: ClientConn, frame: ServerFrame): void {
    if (!client.closed) client.socket.send(encodeFrame(frame));
  }

  private sendError(client: ClientConn, err: unknown, ref?: number, sid?: SessionId): void {
    const e = toSwitchboardError(err);
    if (e.code === 'internal') this.deps.logger.error('internal error', { err: String(err), stack: (err as Error)?.stack });
    const frame: ServerFrame = { t: 'error', code: e.code, msg: e.message, temporary: e.temporary };
    if (e.retryMs !== undefined) frame.retryMs = e.retryMs;
    if (ref !== undefined) frame.ref = ref;
    if (sid !== undefined) frame.sid = sid;
    this.send(client, frame);
  }

  // ─── frames from clients ──────────────────────────────────────────────────

  /** A text frame: not part of the protocol. */
  onText(client: ClientConn): void {
    this.badFrame(client, new SwitchboardError('bad_frame', 'frames must be binary MessagePack maps, not text'));
  }

  onMessage(client: ClientConn, message: Uint8Array): void {
    // Admission by bytes comes first: a frame over the budget costs no decoding.
    if (!this.admitBytes(client, message.byteLength)) return;
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(message);
    } catch (err) {
      this.badFrame(client, err, salvageRef(message));
      return;
    }
    const rate = this.frameLimiter.takeNow(`c:${client.id}`, { limit: this.options.frameRate, windowMs: 1000 });
    if (!rate.ok) {
      this.deps.metrics.rateLimited.inc();
      this.sendError(client, new SwitchboardError('rate_limited', `more than ${this.options.frameRate} frames per second; retry in ${rate.retryMs} ms`, { retryMs: rate.retryMs }), refOf(frame), sidOf(frame));
      return;
    }
    this.deps.metrics.framesIn.inc();
    if (client.busy) this.hold(client, frame, message.byteLength);
    else this.run(client, frame);
  }

  /**
   * Spends `bytes` from the connection's byte budget; false (the frame refused
   * `rate_limited`, unread) when the bucket cannot pay. Persistent overspending closes 1008.
   */
  private admitBytes(client: ClientConn, bytes: number): boolean {
    const rate = this.options.connectionBytesRate ?? 1024 * 1024;
    const burst = this.options.connectionBytesBurst ?? 4 * 1024 * 1024;
    const now = Date.now();
    let b = this.byteBuckets.get(client);
    if (!b) {
      b = { tokens: burst, at: now, refusals: 0, refusalsSince: now };
      this.byteBuckets.set(client, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
    b.at = now;
    if (b.tokens >= bytes) {
      b.tokens -= bytes;
      return true;
    }
    this.deps.metrics.rateLimited.inc();
    const retryMs = Math.ceil(((bytes - b.tokens) * 1000) / rate);
    this.sendError(client, new SwitchboardError(
      'rate_limited',
      `more than ${rate} bytes per second (bursts up to ${burst}) on this connection; this frame of ${bytes} bytes was dropped unread; retry in ${retryMs} ms`,
      { retryMs },
    ));
    if (now - b.refusalsSince > BAD_FRAME_WINDOW_MS) {
      b.refusals = 0;
      b.refusalsSince = now;
    }
    if (++b.refusals > OVER_BUDGET_LIMIT) client.socket.close(CLOSE.policy.code, 'too many frames over the byte budget');
    return false;
  }

  /**
   * Runs one frame. A synchronous one is done when this returns; an asynchronous one
   * (open, attach, kill) marks the connection busy until it took effect, then lets the
   * frames held meanwhile run, in order.
   */
  private run(client: ClientConn, frame: ClientFrame): void {
    let pending: Promise<void> | undefined;
    try {
      pending = this.dispatch(client, frame);
    } catch (err) {
      this.sendError(client, err, refOf(frame), sidOf(frame));
      return;
    }
    if (!pending) return;
    client.busy = true;
    pending.then(
      () => this.release(client),
      (err: unknown) => {
        this.sendError(client, err, refOf(frame), sidOf(frame));
        this.release(client);
      },
    );
  }

  private release(client: ClientConn): void {
    client.busy = false;
    if (client.closed) {
      client.held = [];
      client.heldBytes = 0;
      return;
    }
    let i = 0;
    while (!client.busy && i < client.held.length) {
      const h = client.held[i++]!;
      client.heldBytes -= h.bytes;
      this.run(client, h.frame);
    }
    client.held = i === client.held.length ? [] : client.held.slice(i);
  }

  /** Keeps a frame until the connection's earlier frames took effect; bounded. */
  private hold(client: ClientConn, frame: ClientFrame, bytes: number): void {
    if (client.held.length < HELD_FRAMES_MAX && client.heldBytes + bytes <= HELD_BYTES_MAX) {
      // Decoded `bin` fields are views of the socket's receive buffer, which uWS reuses
      // once the message callback returns: a frame kept longer owns a copy.
      if (frame.t === 'in') frame = { ...frame, data: frame.data.slice() };
      client.held.push({ frame, bytes });
      client.heldBytes += bytes;
      return;
    }
    this.deps.metrics.rateLimited.inc();
    this.sendError(client, new SwitchboardError(
      'rate_limited',
      `too many frames sent while an earlier open, attach or kill is still taking effect (at most ${HELD_FRAMES_MAX} frames or ${HELD_BYTES_MAX / 1024} KiB wait); this frame was dropped: wait for the earlier reply, then resend`,
    ), refOf(frame), sidOf(frame));
    const now = Date.now();
    if (now - client.heldOverflowsSince > HELD_OVERFLOW_WINDOW_MS) {
      client.heldOverflows = 0;
      client.heldOverflowsSince = now;
    }
    if (++client.heldOverflows > HELD_OVERFLOW_LIMIT) client.socket.close(CLOSE.policy.code, 'too many frames while earlier ones were pending');
  }

  private badFrame(client: ClientConn, err: unknown, ref?: number): void {
    this.deps.metrics.badFrames.inc();
    const now = Date.now();
    if (now - client.badFramesSince > BAD_FRAME_WINDOW_MS) {
      client.badFrames = 0;
      client.badFramesSince = now;
    }
    client.badFrames++;
    this.sendError(client, err, ref);
    if (client.badFrames > BAD_FRAME_LIMIT) {
      client.socket.close(CLOSE.policy.code, 'too many bad frames');
    }
  }

  /** Applies a frame; returns a promise only for frames that take effect asynchronously. */
  private dispatch(client: ClientConn, frame: ClientFrame): Promise<void> | undefined {
    switch (frame.t) {
      case 'open':
        return this.open(client, frame);
      case 'attach':
        return this.attach(client, frame);
      case 'kill':
        return this.kill(client, frame);
      case 'in': {
        const a = this.writerOf(client, frame.sid);
        const command: InputCommand = { t: 'in', data: frame.data, c: client.id, e: this.options.nodeId };
        if (frame.n !== undefined) command.n = frame.n;
        if (a.timesKeys && a.keyAt === 0) a.keyAt = performance.now();
        const admitting = this.access.admitInput(client.principal, frame.data.length);
        if (admitting === undefined) {
          this.control(client, a.sid, command);
          return undefined;
        }
        // The principal's input budget needs a round trip: later frames wait behind this
        // one (order), and the data outlives uWS's receive buffer, so it is copied.
        command.data = frame.data.slice();
        return admitting.then(() => {
          if (!client.closed) this.control(client, a.sid, command);
        });
      }
      case 'resize': {
        const a = this.writerOf(client, frame.sid);
        this.checkSize(frame.cols, frame.rows);
        a.size = { cols: frame.cols, rows: frame.rows };
        this.control(client, a.sid, { t: 'resize', cols: frame.cols, rows: frame.rows, c: client.id, e: this.options.nodeId });
        return undefined;
      }
      case 'ack': {
        const a = this.attachmentOf(client, frame.sid);
        if (a.acked === undefined || frame.off > a.acked) a.acked = Math.min(frame.off, a.next);
        this.updateFlow(a);
        return undefined;
      }
      case 'detach': {
        const a = client.attachments.get(frame.sid);
        if (a) this.detach(a);
        return undefined;
      }
      case 'ping':
        this.send(client, { t: 'pong', ref: frame.ref, node: this.options.nodeId, ts: Date.now() });
        return undefined;
    }
  }

  /** Terminal sizes are bounded: a snapshot's cost grows with them. */
  private checkSize(cols: number, rows: number): void {
    if (cols > this.limits.maxCols) {
      throw new SwitchboardError('too_large', `cols ${cols} is over this server's limit of ${this.limits.maxCols} columns (SWITCHBOARD_MAX_COLS)`);
    }
    if (rows > this.limits.maxRows) {
      throw new SwitchboardError('too_large', `rows ${rows} is over this server's limit of ${this.limits.maxRows} rows (SWITCHBOARD_MAX_ROWS)`);
    }
  }

  private attachmentOf(client: ClientConn, sid: SessionId): Attachment {
    const a = client.attachments.get(sid);
    if (!a) throw new SwitchboardError('not_found', `not attached to session ${sid}; send attach first`);
    return a;
  }

  private writerOf(client: ClientConn, sid: SessionId): Attachment {
    const a = this.attachmentOf(client, sid);
    if (!a.isWriter) throw new SwitchboardError('forbidden', `attached to ${sid} as a viewer; attach with role 'writer' to type or resize`);
    return a;
  }

  /**
   * Sends to the session's owner without waiting (`in` is the hot path: no promise of
   * our own per keystroke), in order with everything this edge sent it before.
   */
  private control(client: ClientConn, sid: SessionId, message: ControlMessage): void {
    this.outbox.send(sid, client, encodeValue(message));
  }

  /**
   * Placement's view of the cluster. Opens that arrive while a registry read is in flight
   * share it (single flight): one read per open was a Redis script per session opened.
   */
  private liveNodes(): Promise<NodeInfo[]> {
    if (!this.nodesRead) {
      const read = this.deps.registry.list();
      this.nodesRead = read;
      read.then((nodes) => {
        this.outbox.batching = nodes.every((n) => n.role === 'edge' || n.controlBatches === true);
      }, () => {});
      const done = (): void => {
        if (this.nodesRead === read) this.nodesRead = undefined;
      };
      read.then(done, done);
    }
    return this.nodesRead;
  }

  /**
   * A writer that stops reading pauses its session for every other client. After
   * slowWriterMs (SWITCHBOARD_SLOW_WRITER_MS) of that it is detached (told why), so the session goes on; it can
   * attach again with `from` and lose nothing within the replay window.
   */
  private detachSlowWriters(now = Date.now()): void {
    for (const a of this.pausing) {
      if (a.state === 'closed' || !a.overWatermark) {
        this.pausing.delete(a);
        continue;
      }
      if (now - a.overSince < this.limits.slowWriterMs) continue;
      this.pausing.delete(a);
      this.deps.logger.warn('slow writer detached', { sid: a.sid, client: a.client.id, ip: a.client.ip });
      this.sendError(a.client, new SwitchboardError('rate_limited', `you did not read output of session ${a.sid} for ${this.limits.slowWriterMs} ms while it waited for you; detached so the session goes on. Attach again with from to resume`, { retryMs: 0 }), undefined, a.sid);
      this.detach(a);
    }
  }

  private refuseInput(client: ClientConn, sid: SessionId, why: string): void {
    this.sendError(client, new SwitchboardError('unavailable', `session ${sid}: ${why}; your input was not delivered, send it again`, { retryMs: NO_OWNER_RETRY_MS }), undefined, sid);
  }

  // ─── open, attach, kill ───────────────────────────────────────────────────

  /**
   * Places a new session on a host, then attaches the opener as writer from 0. The
   * attachment is registered before `opened` is sent, so the opener's next frames find it.
   */
  async open(client: ClientConn, frame: OpenFrame): Promise<void> {
    const { sid, node } = await this.place(frame, client.principal, client.ip);
    this.deps.metrics.opened.inc();
    if (client.closed) return;
    const existing = client.attachments.get(sid);
    if (existing) this.detach(existing);
    const a = this.register(client, sid, 'writer', 0);
    a.timesKeys = frame.spec.kind !== 'agent';
    this.send(client, { t: 'opened', ref: frame.ref, sid, node });
    this.begin(a);
  }

  /**
   * Used by `open` and by POST /v1/sessions: picks a host and asks it to start the
   * session. Node-wide, at most `openConcurrency` placements run at once and
   * `openQueue` wait; beyond that, `unavailable` with a retry hint.
   */
  async place(frame: Pick<OpenFrame, 'spec' | 'sid'>, principal: Principal, ip: string): Promise<{ sid: SessionId; node: NodeId }> {
    this.checkSize(frame.spec.cols, frame.spec.rows);
    checkOpen(principal);
    const started = performance.now();
    // Named before placing, so the place under the session cap and the session's record
    // share it (a retry on another host takes a fresh id when the client chose none).
    const sid = frame.sid ?? newSessionId();
    const admission = await this.access.admitOpen(principal, sid);
    // The place under the session cap is given back once the host answered (its record
    // counts from then on), before the client hears; or if the open never ran.
    const placing = this.opens.tryRun(() => this.placeNow(frame, principal.name, sid).finally(admission.release));
    if (placing) placing.catch(admission.release);
    else void admission.release();
    if (placing) {
      const placed = await placing;
      this.deps.metrics.open.observe((performance.now() - started) / 1000);
      this.access.audit('open', placed.sid, placed.epoch, principal, ip, { node: placed.node, kind: frame.spec.kind });
      return { sid: placed.sid, node: placed.node };
    }
    this.opensRefused++;
    const retryMs = this.opens.retryMs(1000);
    throw new SwitchboardError('unavailable', `this node has ${this.opens.queued} opens waiting already; retry in ${retryMs} ms, or open through another node`, { retryMs });
  }

  private async placeNow(frame: Pick<OpenFrame, 'spec' | 'sid'>, principal: string, firstSid: SessionId): Promise<{ sid: SessionId; node: NodeId; epoch: Epoch }> {
    if (frame.sid !== undefined) {
      // A client-chosen id must be new. A host refuses a clash too, but only after taking
      // a lease and touching the log; one read here answers it first, with a clear message.
      let existing: SessionRecord | null;
      try {
        existing = await this.deps.store.getSession(frame.sid);
      } catch (err) {
        throw unreachable('the session store', err);
      }
      if (existing) throw new SwitchboardError('conflict', `session id ${frame.sid} is taken; choose another (at least 128 random bits) or leave sid out`);
    }
    let nodes: NodeInfo[];
    try {
      nodes = await this.liveNodes();
    } catch (err) {
      throw unreachable('the node registry', err);
    }
    const tried = new Set<NodeId>();
    let lastError: SwitchboardError = new SwitchboardError('unavailable', 'no host node has room for a new session; try again later', { retryMs: BACKEND_RETRY_MS });
    for (let attempt = 0; attempt < 2; attempt++) {
      const host = pickHost(nodes, tried, Math.random, frame.spec.kind);
      if (!host) break;
      tried.add(host.id);
      const sid = attempt === 0 ? firstSid : frame.sid ?? newSessionId();
      const request: Omit<OpenRequest, 'rid'> = { t: 'open', e: this.options.nodeId, sid, spec: frame.spec, owner: principal };
      try {
        const reply = await this.deps.rpc.call<OpenRequest>(nodeInbox(host.id), request, OPEN_TIMEOUT_MS);
        if (reply.ok) return { sid, node: reply.node ?? host.id, epoch: reply.epoch ?? 0 };
        const code = reply.code ?? 'internal';
        lastError = new SwitchboardError(code, reply.msg ?? 'open failed', code === 'unavailable' ? { retryMs: BACKEND_RETRY_MS } : {});
      } catch (err) {
        lastError = toSwitchboardError(err);
      }
      if (lastError.code !== 'unavailable') throw lastError;
    }
    throw lastError;
  }

  /**
   * `attached` is sent once the attachment is registered, so the next `in`, `resize` or
   * `ack` finds it. With `from`, output replays from there. Without, a terminal gets a
   * screen snapshot computed by a worker thread (at most one in flight per connection;
   * the attach is refused `unavailable` when the node's snapshot queue is full) and an
   * agent or echo session the retained window. Until its first output the attachment
   * only collects non-output events, like any attachment that is catching up.
   */
  async attach(client: ClientConn, frame: AttachFrame): Promise<void> {
    const wantsScreen = frame.from === undefined;
    if (wantsScreen && client.snapshot) await client.snapshot;
    const record = await this.record(frame.sid);
    checkAttach(client.principal, record, frame.role);
    let bounds: Awaited<ReturnType<SessionLog['bounds']>>;
    try {
      bounds = await this.deps.log.bounds(frame.sid);
    } catch (err) {
      throw unreachable('the replay log', err);
    }
    if (client.closed) return;
    const head = bounds?.head ?? 0;
    const start = bounds?.start ?? 0;
    const ended = record.status === 'exited' || record.status === 'lost' ? record : undefined;
    const screen = wantsScreen && record.kind === 'pty' && head > 0;
    if (screen && !this.snapshots.hasRoom) {
      this.snapshotsRefused++;
      const retryMs = this.snapshots.retryMs();
      throw new SwitchboardError('unavailable', `this node is busy computing screen snapshots; retry in ${retryMs} ms, or attach with from to replay output instead`, { retryMs });
    }
    const existing = client.attachments.get(frame.sid);
    if (existing) this.detach(existing);
    const a = this.register(client, frame.sid, frame.role, frame.from ?? (screen ? head : start), ended);
    a.timesKeys = record.kind !== 'agent';
    this.send(client, { t: 'attached', ref: frame.ref, sid: frame.sid, head, node: record.node, cols: record.cols, rows: record.rows });
    this.access.audit('attach', frame.sid, record.epoch, client.principal, client.ip, { role: frame.role });
    if (!screen) {
      this.begin(a);
      return;
    }
    const snapshot = this.sendScreen(a, record, start, head);
    client.snapshot = snapshot;
    void snapshot.then(() => {
      if (client.snapshot === snapshot) client.snapshot = undefined;
    });
  }

  /**
   * Sends `a` a snapshot of the screen as of the log's head, then starts its output
   * from there. Never rejects: when the snapshot fails, output replays from `start`.
   */
  private async sendScreen(a: Attachment, record: SessionRecord, start: Offset, head: Offset): Promise<void> {
    let snapHead = head;
    try {
      const data = await this.snapshots.submit(async () => {
        if (a.state === 'closed') return undefined; // the client went away while queued
        const chunks = await this.history.window(a.sid, Math.max(start, head - SNAPSHOT_WINDOW_BYTES), head);
        const last = chunks.at(-1);
        if (last) snapHead = last.off + last.data.length;
        return { chunks, cols: Math.min(record.cols, this.limits.maxCols), rows: Math.min(record.rows, this.limits.maxRows) };
      });
      if (a.state === 'closed' || data === undefined) return;
      this.send(a.client, { t: 'out', sid: a.sid, off: snapHead, data, snap: true });
      a.next = snapHead;
    } catch (err) {
      if (a.state === 'closed') return;
      this.deps.logger.warn('screen snapshot failed; replaying the window instead', { sid: a.sid, err: String(err) });
      a.next = start;
    }
    this.begin(a);
  }

  /**
   * Up to `maxBytes` of the session's output from `from` for `principal` (owner or admin;
   * others: not_found): see OutputHistory.transcript.
   */
  async transcript(sid: SessionId, principal: Principal, from: Offset, maxBytes: number): Promise<Transcript> {
    checkShare(principal, await this.record(sid));
    return this.history.transcript(sid, from, maxBytes);
  }

  private async record(sid: SessionId): Promise<SessionRecord> {
    let record: SessionRecord | null;
    try {
      record = await this.deps.store.getSession(sid);
    } catch (err) {
      throw unreachable('the session store', err);
    }
    if (!record) throw new SwitchboardError('not_found', `no session ${sid}`);
    return record;
  }

  /**
   * Registers an attachment with the client and the session's watch; nothing is sent
   * to it until begin(). An ended session is not watched: its attachment replays what
   * is kept, then its `exit`.
   */
  private register(client: ClientConn, sid: SessionId, role: Role, from: Offset, ended?: SessionRecord): Attachment {
    const a = new Attachment(client, sid, role, from);
    client.attachments.set(sid, a);
    if (ended) {
      const exit: ServerFrame = { t: 'exit', sid, code: ended.exitCode ?? 0 };
      if (ended.exitSignal) exit.signal = ended.exitSignal;
      if (ended.exitReason) exit.reason = ended.exitReason;
      a.held.push(encodeFrame(exit));
      a.exitSeen = true;
      return a;
    }
    const w = this.watch(sid);
    w.attachments.add(a);
    this.sendWatch(w);
    return a;
  }

  /** Starts output to a registered attachment: replay from `a.next`, then live. */
  private begin(a: Attachment): void {
    if (a.state === 'closed') return;
    const w = this.watched.get(a.sid);
    if (w?.attachments.has(a)) void w.ready.then(() => this.catchUp(a));
    else void this.catchUp(a);
  }

  /**
   * Ends an attachment: leaves the client's map and the session's watch (dropping the
   * bus subscription with the last one). `tellHost` is false once the session exited:
   * nobody owns it any more.
   */
  private detach(a: Attachment, tellHost = true): void {
    a.state = 'closed';
    this.pausing.delete(a);
    if (a.client.attachments.get(a.sid) === a) a.client.attachments.delete(a.sid);
    const w = this.watched.get(a.sid);
    if (!w || !w.attachments.delete(a)) return;
    if (tellHost) this.sendWatch(w);
    if (w.attachments.size === 0) {
      this.outbox.drop(a.sid, 'no client here watches the session any more');
      this.watched.delete(a.sid);
      w.unsubscribe?.();
      w.unsubscribe = undefined;
      this.deps.metrics.sessionsWatched.set(this.watched.size);
    }
  }

  async kill(client: ClientConn, frame: KillFrame): Promise<void> {
    await this.killSession(frame.sid, frame.signal, client.principal, client.ip);
    this.send(client, { t: 'killed', ref: frame.ref, sid: frame.sid });
  }

  /** Used by `kill` and DELETE /v1/sessions/:sid: the owner's or an admin's (else `not_found`). */
  async killSession(sid: SessionId, signal: string, principal: Principal, ip: string): Promise<void> {
    const record = await this.record(sid);
    checkKill(principal, record);
    if (record.status === 'exited' || record.status === 'lost') return;
    this.access.audit('kill', sid, record.epoch, principal, ip, { signal });
    const message: Omit<Extract<ControlMessage, { t: 'kill' }>, 'rid'> = { t: 'kill', signal, e: this.options.nodeId };
    const reply = await this.deps.rpc.call<Extract<ControlMessage, { t: 'kill' }>>(sessionControl(sid), message, KILL_TIMEOUT_MS);
    if (!reply.ok) throw new SwitchboardError(reply.code ?? 'internal', reply.msg ?? 'kill failed');
  }

  // ─── session events and fan-out ──────────────────────────────────────────

  private watch(sid: SessionId): Watched {
    let w = this.watched.get(sid);
    if (w) return w;
    const created: Watched = { sid, attachments: new Set(), unsubscribe: undefined, ready: Promise.resolve(), paused: false };
    created.ready = this.deps.bus.subscribe(sessionEvents(sid), (payload) => this.onEvent(created, payload)).then(
      (unsubscribe) => {
        if (this.watched.get(sid) === created) created.unsubscribe = unsubscribe;
        else unsubscribe();
      },
      (err) => this.deps.logger.warn('subscribe failed; clients read from the log', { sid, err: String(err) }),
    );
    this.watched.set(sid, created);
    this.deps.metrics.sessionsWatched.set(this.watched.size);
    return created;
  }

  private onEvent(w: Watched, payload: Uint8Array): void {
    // Output, nearly every event: read in place, forwarded as is.
    const out = peekOut(payload);
    if (out) {
      for (const a of w.attachments) this.deliverOut(a, out, payload);
      return;
    }
    let event: ServerFrame;
    try {
      event = decodeMessage(payload) as ServerFrame;
    } catch {
      this.deps.metrics.undecodable.inc();
      return;
    }
    if (event.t === 'out') {
      // Not in encodeFrame's layout (another writer): forward our own encoding.
      const canonical = encodeFrame({ t: 'out', sid: w.sid, off: event.off, data: event.data });
      const layout = peekOut(canonical);
      if (layout) for (const a of w.attachments) this.deliverOut(a, layout, canonical);
      return;
    }
    if (event.t === 'owner') {
      // The new owner listens already (it announces only then): what waited goes now.
      this.outbox.ownerAnnounced(w.sid);
    }
    if (event.t === 'exit') this.outbox.drop(w.sid, 'the session ended');
    for (const a of w.attachments) {
      if (a.state === 'live') a.client.socket.send(payload);
      else if (a.state !== 'closed') a.held.push(payload);
      if (event.t === 'exit') a.exitSeen = true;
    }
    if (event.t === 'exit') {
      // Nothing more will come: let the watchers go once they have caught up.
      for (const a of [...w.attachments]) if (a.state === 'live') this.detach(a, false);
    }
  }

  private deliverOut(a: Attachment, out: OutLayout, payload: Uint8Array): void {
    if (a.state !== 'live') {
      if (a.state === 'replaying') a.missedWhileReplaying = true;
      return;
    }
    const end = out.off + out.dataLength;
    if (end <= a.next) return; // already sent (replay overlapped the live stream)
    if (out.off > a.next) {
      // A hole: a bus message was lost (outage, resubscribe). The log has it.
      void this.catchUp(a);
      return;
    }
    const bytes = out.off === a.next
      ? payload
      : encodeFrame({ t: 'out', sid: a.sid, off: a.next, data: payload.subarray(out.dataAt + a.next - out.off, out.dataAt + out.dataLength) });
    a.client.socket.send(bytes);
    a.next = end;
    this.deps.metrics.bytesOut.inc(out.dataLength);
    if (a.keyAt !== 0) {
      this.deps.metrics.observeKeystroke(performance.now() - a.keyAt);
      a.keyAt = 0;
    }
    this.afterSend(a);
  }

  /** After sending: too much buffered → lagging; writers' buffers feed flow control. */
  private afterSend(a: Attachment): void {
    const buffered = a.client.socket.bufferedAmount();
    if (buffered > this.options.lagLimit && a.state === 'live') {
      a.state = 'lagging';
      this.deps.metrics.lagging.inc();
    }
    if (a.isWriter) this.updateFlow(a, buffered);
  }

  /** Replays from `a.next` until caught up with the head, then goes live. */
  private async catchUp(a: Attachment): Promise<void> {
    if (a.state === 'closed') return;
    a.state = 'replaying';
    const { sid } = a;
    try {
      for (;;) {
        a.missedWhileReplaying = false;
        const read = await this.deps.log.read(sid, a.next, REPLAY_STEP_BYTES);
        if (a.state !== 'replaying') return;
        let chunks = read.chunks;
        if (read.gap) {
          // Older than the log: the archive may hold them. One page per turn (bounded
          // work per attach); a `gap` only for what neither holds.
          const archived = await this.history.archivedPage(sid, a.next, read.gap.to);
          if (a.state !== 'replaying') return;
          const first = archived[0];
          if (first === undefined || first.off > a.next) {
            const to = first === undefined ? read.gap.to : first.off;
            this.send(a.client, { t: 'gap', sid, from: a.next, to });
            a.next = to;
          }
          if (archived.length > 0) chunks = archived;
        }
        for (const chunk of chunks) {
          if (chunk.off + chunk.data.length <= a.next) continue;
          const data = chunk.off < a.next ? chunk.data.subarray(a.next - chunk.off) : chunk.data;
          a.client.socket.send(encodeFrame({ t: 'out', sid, off: a.next, data }));
          a.next += data.length;
        }
        if (a.client.socket.bufferedAmount() > this.options.lagLimit) {
          a.state = 'lagging'; // resumes on drain
          if (a.isWriter) this.updateFlow(a);
          return;
        }
        // A writer replaying far behind a fast producer would never catch up (a replay
        // step is a log read; a flood of ~40 MB/s outran it and the writer stayed ~10
        // MB/s behind for good): counted in flow control, it pauses the session meanwhile.
        a.behind = Math.max(0, read.head - a.next);
        if (a.isWriter) this.updateFlow(a);
        if (a.next >= read.head && !a.missedWhileReplaying) break;
      }
    } catch (err) {
      this.deps.logger.warn('replay failed', { sid, err: String(err) });
      this.sendError(a.client, new SwitchboardError('unavailable', 'the replay log is unreachable; reattach with from to resume', { temporary: true }), undefined, sid);
      this.detach(a);
      return;
    }
    a.state = 'live';
    a.behind = 0;
    if (a.isWriter) this.updateFlow(a);
    const held = a.held;
    a.held = [];
    for (const frame of held) a.client.socket.send(frame);
    if (a.exitSeen) this.detach(a, false);
  }

  // ─── flow control ─────────────────────────────────────────────────────────

  /**
   * A writer above the high watermark pauses the session; all writers below the low
   * one resume it. Viewers never pause: they lag and catch up from the log instead.
   */
  private updateFlow(a: Attachment, buffered = a.client.socket.bufferedAmount()): void {
    if (!a.isWriter) return;
    const unacked = a.state === 'lagging' ? Number.POSITIVE_INFINITY : a.unacked(buffered);
    if (!a.overWatermark && unacked > this.options.highWatermark) {
      a.overWatermark = true;
      a.overSince = Date.now();
      this.pausing.add(a);
    } else if (a.overWatermark && unacked < this.options.lowWatermark) {
      a.overWatermark = false;
      this.pausing.delete(a);
    } else return;
    const w = this.watched.get(a.sid);
    if (w) this.sendWatch(w);
  }

  private sendWatch(w: Watched): void {
    let writers = 0;
    let viewers = 0;
    let paused = false;
    const sizes: Array<[ClientId, number, number]> = [];
    for (const a of w.attachments) {
      if (a.isWriter) {
        writers++;
        if (a.overWatermark) paused = true;
        if (a.size) sizes.push([a.client.id, a.size.cols, a.size.rows]);
      } else viewers++;
    }
    w.paused = paused;
    const message: WatchCommand = { t: 'watch', e: this.options.nodeId, writers, viewers, sizes, paused };
    void this.deps.bus.publish(sessionControl(w.sid), encodeValue(message)).catch(this.dropped('watch update', { sid: w.sid }));
  }

  /** Tells every client to reconnect elsewhere, in paced batches (drain). */
  async sayBye(retryMs: number, batchSize: number, pauseMs: number): Promise<void> {
    const all = [...this.clients.values()];
    for (let i = 0; i < all.length; i += batchSize) {
      for (const client of all.slice(i, i + batchSize)) {
        const jitter = Math.floor(Math.random() * retryMs);
        this.send(client, { t: 'bye', reason: 'draining', retryMs: retryMs + jitter });
        client.socket.close(CLOSE.goingAway.code, 'draining');
      }
      if (i + batchSize < all.length) await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  close(): void {
    this.snapshots.close();
    clearInterval(this.holdTimer);
    for (const w of this.watched.values()) w.unsubscribe?.();
    this.watched.clear();
  }
}

function refOf(frame: ClientFrame): number | undefined {
  return 'ref' in frame ? frame.ref : undefined;
}

function sidOf(frame: ClientFrame): SessionId | undefined {
  return 'sid' in frame ? frame.sid : undefined;
}
