/**
 * The node's end of one keeper connection: requests matched to replies by id, events
 * routed to the session they name. When the connection closes every session listener
 * hears `lost` (the keeper died, and the PTYs with it) and pending requests fail.
 */
import { createConnection, type Socket } from 'node:net';
import { once } from 'node:events';
import { SwitchboardError, type WireErrorCode } from '../errors/errors.js';
import type { NodeId, Offset, SessionId } from '../util/ids.js';
import {
  encodeKeeperFrame, FrameReader, KEEPER_PROTOCOL_VERSION,
  type KeeperRequest, type KeeperToNode, type KeptExit, type NodeToKeeper,
} from './protocol.js';

/** What a session hears from the keeper. */
export interface KeptSessionListener {
  data(off: Offset, data: Uint8Array): void;
  exit(exit: KeptExit): void;
  /** Another connection attached the PTY at an equal or higher epoch. */
  detached(reason: string): void;
  /** The keeper connection closed: the PTY is gone. */
  lost(reason: string): void;
  /** How much input the keeper received and how much of it still waits (InputEvent). */
  input?(received: number, queued: number): void;
}

type Reply = Record<string, unknown>;
/** A request as the caller writes it: the client adds `id`. */
export type RequestBody = KeeperRequest extends infer R ? R extends { id: number } ? Omit<R, 'id'> : never : never;

/** How long the hello may take before the keeper counts as not answering. */
const HELLO_TIMEOUT_MS = 5_000;

export class KeeperClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private readonly sessions = new Map<SessionId, KeptSessionListener>();
  private readonly reader = new FrameReader();
  private closeListeners: Array<(reason: string) => void> = [];
  private isClosed = false;
  /** The keeper's process id, from its hello reply. */
  keeperPid = 0;
  keeperVersion = 0;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = this.reader.push(chunk);
      } catch (err) {
        this.shutdown(`bad frame from the keeper: ${String(err)}`);
        return;
      }
      for (const m of messages) this.dispatch(m as KeeperToNode);
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.shutdown(`the terminal keeper${this.keeperPid ? ` (pid ${this.keeperPid})` : ''} ended`));
  }

  /** Connects and says hello; rejects when nothing answers on the socket. */
  static async connect(socketPath: string, node: NodeId): Promise<KeeperClient> {
    const socket = createConnection(socketPath);
    await once(socket, 'connect');
    const client = new KeeperClient(socket);
    const timer = setTimeout(() => client.shutdown('the keeper did not answer hello'), HELLO_TIMEOUT_MS);
    try {
      const hello = await client.request({ t: 'hello', v: KEEPER_PROTOCOL_VERSION, node, pid: process.pid });
      client.keeperPid = Number(hello.pid);
      client.keeperVersion = Number(hello.v);
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  onClose(listener: (reason: string) => void): void {
    if (this.isClosed) listener('closed');
    else this.closeListeners.push(listener);
  }

  request(body: RequestBody): Promise<Reply> {
    if (this.isClosed) return Promise.reject(new SwitchboardError('unavailable', 'the terminal keeper is not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(encodeKeeperFrame({ ...body, id } as NodeToKeeper));
    });
  }

  send(message: NodeToKeeper): void {
    if (!this.isClosed) this.socket.write(encodeKeeperFrame(message));
  }

  register(sid: SessionId, listener: KeptSessionListener): void {
    this.sessions.set(sid, listener);
  }

  unregister(sid: SessionId, listener: KeptSessionListener): void {
    if (this.sessions.get(sid) === listener) this.sessions.delete(sid);
  }

  private dispatch(m: KeeperToNode): void {
    switch (m.t) {
      case 'reply': {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m);
        else p.reject(new SwitchboardError(m.code as WireErrorCode, m.msg));
        return;
      }
      case 'data':
        this.sessions.get(m.sid)?.data(m.off, m.data);
        return;
      case 'exit': {
        const exit: KeptExit = { code: m.code };
        if (m.signal) exit.signal = m.signal;
        this.sessions.get(m.sid)?.exit(exit);
        return;
      }
      case 'input':
        this.sessions.get(m.sid)?.input?.(m.received, m.queued);
        return;
      case 'detached': {
        const listener = this.sessions.get(m.sid);
        this.sessions.delete(m.sid);
        listener?.detached(m.reason);
        return;
      }
    }
  }

  /** `notify`: sessions hear `lost` (not when the node closes on purpose: it stopped them). */
  private shutdown(reason: string, notify = true): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // On purpose: what was written (a last discard or ack) still reaches the keeper.
    if (notify) this.socket.destroy();
    else this.socket.end();
    for (const p of this.pending.values()) p.reject(new SwitchboardError('unavailable', `${reason}; try again`));
    this.pending.clear();
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    if (notify) for (const s of sessions) s.lost(reason);
    const listeners = this.closeListeners;
    this.closeListeners = [];
    for (const l of listeners) l(reason);
  }

  close(): void {
    this.shutdown('closed by the node', false);
  }
}
