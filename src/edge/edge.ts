/**
 * The edge role: protocol v1 for the clients connected to this node. Its only state is
 * which local sockets watch which sessions, rebuilt by reconnects.
 *
 *   client ──frame──▶ edge ──sessionControl(sid)──▶ owner host
 *   owner ──log.append = store + publish sessionEvents(sid)──▶ edge ──same bytes──▶ clients
 *   late or lagging clients catch up from the log, then switch to live events.
 */
import type { Bus, Unsubscribe } from '../bus/bus.js';
import { nodeInbox, sessionControl, sessionEvents } from '../bus/channels.js';
import type { SessionLog } from '../log/log.js';
import type { NodeInfo, Registry } from '../registry/registry.js';
import type { SessionRecord, Store } from '../store/store.js';
import { decodeMessage, encodeFrame, encodeValue } from '../protocol/codec.js';
import type { AttachFrame, ClientFrame, KillFrame, OpenFrame, Role, ServerFrame } from '../protocol/frames.js';
import { parseClientFrame, salvageRef } from '../protocol/parse.js';
import { CLOSE, SwitchboardError, toSwitchboardError } from '../errors/errors.js';
import type { ClientId, NodeId, Offset, SessionId } from '../util/ids.js';
import { newSessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { ControlMessage, InputCommand, OpenRequest, WatchCommand } from '../node/messages.js';
import type { Rpc } from '../node/rpc.js';
import { MemoryLimiter } from '../limit/memory-limiter.js';
import { Attachment } from './attachment.js';
import { ClientConn, type SocketLike } from './client-conn.js';
import { pickHost } from './placement.js';
import { screenSnapshot } from './snapshot.js';
import type { Metrics } from '../node/metrics.js';

/** Bytes read from the log per catch-up step. */
const REPLAY_STEP_BYTES = 256 * 1024;
/** Bad frames within BAD_FRAME_WINDOW_MS before the connection is closed 1008. */
const BAD_FRAME_LIMIT = 20;
const BAD_FRAME_WINDOW_MS = 10_000;
const OPEN_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 5_000;

export interface EdgeOptions {
  nodeId: NodeId;
  highWatermark: number;
  lowWatermark: number;
  /** Send buffer past which a socket stops getting live output and must catch up. */
  lagLimit: number;
  frameRate: number;
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

interface OutEvent {
  t: 'out';
  off: Offset;
  data: Uint8Array;
}

export class Edge {
  private nextClientId: ClientId = 1;
  readonly clients = new Map<ClientId, ClientConn>();
  private readonly watched = new Map<SessionId, Watched>();
  private readonly frameLimiter = new MemoryLimiter();

  constructor(private readonly options: EdgeOptions, private readonly deps: EdgeDeps) {}

  start(): void {
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

  // ─── connections ──────────────────────────────────────────────────────────

  connect(socket: SocketLike, principal: string, ip: string): ClientConn {
    const client = new ClientConn(this.nextClientId++, principal, socket, ip);
    this.clients.set(client.id, client);
    this.deps.metrics.clients.set(this.clients.size);
    return client;
  }

  disconnect(client: ClientConn): void {
    client.closed = true;
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

  private send(client: ClientConn, frame: ServerFrame): void {
    if (!client.closed) client.socket.send(encodeFrame(frame));
  }

  private sendError(client: ClientConn, err: unknown, ref?: number, sid?: SessionId): void {
    const e = toSwitchboardError(err);
    if (e.code === 'internal') this.deps.logger.error('internal error', { err: String(err), stack: (err as Error)?.stack });
    const frame: ServerFrame = { t: 'error', code: e.code, msg: e.message };
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
      const ref = 'ref' in frame ? frame.ref : undefined;
      this.sendError(client, new SwitchboardError('rate_limited', `more than ${this.options.frameRate} frames per second; retry in ${rate.retryMs} ms`), ref);
      return;
    }
    this.deps.metrics.framesIn.inc();
    this.dispatch(client, frame).catch((err) => {
      const ref = 'ref' in frame ? frame.ref : undefined;
      const sid = 'sid' in frame ? frame.sid : undefined;
      this.sendError(client, err, ref, sid);
    });
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

  private async dispatch(client: ClientConn, frame: ClientFrame): Promise<void> {
    switch (frame.t) {
      case 'open':
        return this.open(client, frame);
      case 'attach':
        return this.attach(client, frame);
      case 'in': {
        const a = this.writerOf(client, frame.sid);
        const command: InputCommand = { t: 'in', data: frame.data, c: client.id, e: this.options.nodeId };
        if (frame.n !== undefined) command.n = frame.n;
        return this.control(a.sid, command);
      }
      case 'resize': {
        const a = this.writerOf(client, frame.sid);
        a.size = { cols: frame.cols, rows: frame.rows };
        return this.control(a.sid, { t: 'resize', cols: frame.cols, rows: frame.rows, c: client.id, e: this.options.nodeId });
      }
      case 'ack': {
        const a = this.attachmentOf(client, frame.sid);
        if (a.acked === undefined || frame.off > a.acked) a.acked = Math.min(frame.off, a.next);
        this.updateFlow(a);
        return;
      }
      case 'detach': {
        const a = client.attachments.get(frame.sid);
        if (a) this.detach(a);
        return;
      }
      case 'kill':
        return this.kill(client, frame);
      case 'ping':
        this.send(client, { t: 'pong', ref: frame.ref, node: this.options.nodeId, ts: Date.now() });
        return;
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

  private async control(sid: SessionId, message: ControlMessage): Promise<void> {
    try {
      await this.deps.bus.publish(sessionControl(sid), encodeValue(message));
    } catch (err) {
      throw new SwitchboardError('unavailable', 'the message bus is unreachable; input was not delivered, try again', { temporary: true, cause: err });
    }
  }

  // ─── open, attach, kill ───────────────────────────────────────────────────

  /** Places a new session on a host, then attaches the opener as writer from 0. */
  async open(client: ClientConn, frame: OpenFrame): Promise<void> {
    const { sid, node } = await this.place(frame, client.principal);
    this.deps.metrics.opened.inc();
    this.send(client, { t: 'opened', ref: frame.ref, sid, node });
    if (client.closed) return;
    this.startAttachment(client, sid, 'writer', 0);
  }

  /** Used by `open` and by POST /v1/sessions: picks a host and asks it to start the session. */
  async place(frame: Pick<OpenFrame, 'spec'>, principal: string): Promise<{ sid: SessionId; node: NodeId }> {
    let nodes: NodeInfo[];
    try {
      nodes = await this.deps.registry.list();
    } catch (err) {
      throw new SwitchboardError('unavailable', 'the node registry is unreachable; try again', { temporary: true, cause: err });
    }
    const tried = new Set<NodeId>();
    let lastError: SwitchboardError = new SwitchboardError('unavailable', 'no host node has room for a new session; try again later', { temporary: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      const host = pickHost(nodes, tried);
      if (!host) break;
      tried.add(host.id);
      const sid = newSessionId();
      const request: Omit<OpenRequest, 'rid'> = { t: 'open', e: this.options.nodeId, sid, spec: frame.spec, owner: principal };
      try {
        const reply = await this.deps.rpc.call<OpenRequest>(nodeInbox(host.id), request, OPEN_TIMEOUT_MS);
        if (reply.ok) return { sid, node: reply.node ?? host.id };
        lastError = new SwitchboardError(reply.code ?? 'internal', reply.msg ?? 'open failed');
        if (lastError.code !== 'unavailable') throw lastError;
      } catch (err) {
        lastError = toSwitchboardError(err);
        if (lastError.code !== 'unavailable') throw lastError;
      }
    }
    throw lastError;
  }

  async attach(client: ClientConn, frame: AttachFrame): Promise<void> {
    const record = await this.record(frame.sid);
    const bounds = await this.deps.log.bounds(frame.sid);
    const head = bounds?.head ?? 0;
    if (client.closed) return;
    const existing = client.attachments.get(frame.sid);
    if (existing) this.detach(existing);
    this.send(client, { t: 'attached', ref: frame.ref, sid: frame.sid, head, node: record.node, cols: record.cols, rows: record.rows });
    const ended = record.status === 'exited' || record.status === 'lost';
    if (frame.from !== undefined) {
      this.startAttachment(client, frame.sid, frame.role, frame.from, ended ? record : undefined);
      return;
    }
    // No `from`: a screen snapshot for terminals, the retained window otherwise.
    const start = bounds?.start ?? 0;
    if (record.kind === 'pty' && head > 0) {
      const chunks = await this.readWindow(frame.sid, start, head);
      const last = chunks.at(-1);
      const snapHead = last ? last.off + last.data.length : head;
      const snapshot = await screenSnapshot(chunks, record.cols, record.rows);
      if (client.closed) return;
      this.send(client, { t: 'out', sid: frame.sid, off: snapHead, data: snapshot, snap: true });
      this.startAttachment(client, frame.sid, frame.role, snapHead, ended ? record : undefined);
    } else {
      this.startAttachment(client, frame.sid, frame.role, start, ended ? record : undefined);
    }
  }

  /** Every kept chunk from `from` to `head`, page by page (a log read is bounded). */
  private async readWindow(sid: SessionId, from: Offset, head: Offset): Promise<Array<{ off: Offset; data: Uint8Array }>> {
    const chunks: Array<{ off: Offset; data: Uint8Array }> = [];
    let cursor = from;
    while (cursor < head) {
      const page = await this.deps.log.read(sid, cursor, REPLAY_STEP_BYTES);
      if (page.gap) cursor = page.gap.to;
      if (page.chunks.length === 0) break;
      for (const c of page.chunks) chunks.push(c);
      const last = page.chunks[page.chunks.length - 1]!;
      cursor = last.off + last.data.length;
    }
    return chunks;
  }

  private async record(sid: SessionId): Promise<SessionRecord> {
    let record: SessionRecord | null;
    try {
      record = await this.deps.store.getSession(sid);
    } catch (err) {
      throw new SwitchboardError('unavailable', 'the session store is unreachable; try again', { temporary: true, cause: err });
    }
    if (!record) throw new SwitchboardError('not_found', `no session ${sid}`);
    return record;
  }

  private startAttachment(client: ClientConn, sid: SessionId, role: Role, from: Offset, ended?: SessionRecord): void {
    const a = new Attachment(client, sid, role, from);
    client.attachments.set(sid, a);
    if (ended) {
      // The session is over: replay what is kept, then say how it ended.
      const exit: ServerFrame = { t: 'exit', sid, code: ended.exitCode ?? 0 };
      if (ended.exitSignal) exit.signal = ended.exitSignal;
      if (ended.exitReason) exit.reason = ended.exitReason;
      a.held.push(encodeFrame(exit));
      a.exitSeen = true;
      void this.catchUp(a);
      return;
    }
    const w = this.watch(sid);
    w.attachments.add(a);
    this.sendWatch(w);
    void w.ready.then(() => this.catchUp(a));
  }

  /**
   * Ends an attachment: leaves the client's map and the session's watch (dropping the
   * bus subscription with the last one). `tellHost` is false once the session exited:
   * nobody owns it any more.
   */
  private detach(a: Attachment, tellHost = true): void {
    a.state = 'closed';
    if (a.client.attachments.get(a.sid) === a) a.client.attachments.delete(a.sid);
    const w = this.watched.get(a.sid);
    if (!w || !w.attachments.delete(a)) return;
    if (tellHost) this.sendWatch(w);
    if (w.attachments.size === 0) {
      this.watched.delete(a.sid);
      w.unsubscribe?.();
      w.unsubscribe = undefined;
      this.deps.metrics.sessionsWatched.set(this.watched.size);
    }
  }

  async kill(client: ClientConn, frame: KillFrame): Promise<void> {
    await this.killSession(frame.sid, frame.signal);
    this.send(client, { t: 'killed', ref: frame.ref, sid: frame.sid });
  }

  /** Used by `kill` and DELETE /v1/sessions/:sid. */
  async killSession(sid: SessionId, signal: string): Promise<void> {
    const record = await this.record(sid);
    if (record.status === 'exited' || record.status === 'lost') return;
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
    let event: ServerFrame;
    try {
      event = decodeMessage(payload) as ServerFrame;
    } catch {
      return;
    }
    if (event.t === 'out') {
      for (const a of w.attachments) this.deliverOut(a, event, payload);
      return;
    }
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

  private deliverOut(a: Attachment, event: OutEvent, payload: Uint8Array): void {
    if (a.state !== 'live') {
      if (a.state === 'replaying') a.missedWhileReplaying = true;
      return;
    }
    const end = event.off + event.data.length;
    if (end <= a.next) return; // already sent (replay overlapped the live stream)
    if (event.off > a.next) {
      // A hole: a bus message was lost (outage, resubscribe). The log has it.
      void this.catchUp(a);
      return;
    }
    const bytes = event.off === a.next ? payload : encodeFrame({ t: 'out', sid: a.sid, off: a.next, data: event.data.subarray(a.next - event.off) });
    a.client.socket.send(bytes);
    a.next = end;
    this.deps.metrics.bytesOut.inc(event.data.length);
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
        if (read.gap) {
          this.send(a.client, { t: 'gap', sid, from: read.gap.from, to: read.gap.to });
          a.next = read.gap.to;
        }
        for (const chunk of read.chunks) {
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
        if (a.next >= read.head && !a.missedWhileReplaying) break;
      }
    } catch (err) {
      this.deps.logger.warn('replay failed', { sid, err: String(err) });
      this.sendError(a.client, new SwitchboardError('unavailable', 'the replay log is unreachable; reattach with from to resume', { temporary: true }), undefined, sid);
      this.detach(a);
      return;
    }
    a.state = 'live';
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
    if (!a.overWatermark && unacked > this.options.highWatermark) a.overWatermark = true;
    else if (a.overWatermark && unacked < this.options.lowWatermark) a.overWatermark = false;
    else return;
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
    void this.deps.bus.publish(sessionControl(w.sid), encodeValue(message)).catch(() => {});
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
    for (const w of this.watched.values()) w.unsubscribe?.();
    this.watched.clear();
  }
}
