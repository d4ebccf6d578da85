/**
 * A terminal whose PTY the keeper process holds (src/keeper/): the same Backend as
 * PtyBackend for the host, but the shell survives this node process.
 *
 *   HostedSession ──write/resize/pause/kill──▶ KeeperClient ──unix socket──▶ keeper ──▶ PTY
 *   HostedSession ◀──onData(off order)────────  data {sid, off}  ◀────────────────────┘
 *   output confirmed by the log ──ack {off}──▶ keeper drops it
 *
 * Created either to spawn (a new session, or a restart at `head`) or to attach to a PTY
 * the keeper kept (adoption after a restart or drain of the node). `ready` settles when
 * the keeper answered; operations before that are queued in order.
 */
import type { OpenSpec } from '../protocol/frames.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import type { KeeperClient, KeptSessionListener } from '../keeper/client.js';
import type { KeeperLink } from '../keeper/link.js';
import type { BufferLimits, KeptExit, NodeToKeeper } from '../keeper/protocol.js';
import type { Backend, BackendContext, BackendExit, BackendFactory } from './backend.js';
import { defaultBackends } from './factory.js';

/** The shell got SIGHUP when the keeper's PTY master closed: 128 + 1. */
const LOST_EXIT_CODE = 129;

export type KeptStart =
  | { how: 'spawn'; epoch: Epoch; base: Offset; spec: OpenSpec; owner: string; createdAt: number }
  | { how: 'attach'; epoch: Epoch; from: Offset };

export class KeptPtyBackend implements Backend, KeptSessionListener {
  pid: number | undefined;
  readonly ready: Promise<void>;
  private client: KeeperClient | undefined;
  private queue: NodeToKeeper[] = [];
  private dataListener: ((data: Uint8Array) => void) | undefined;
  private exitListener: ((exit: BackendExit) => void) | undefined;
  private takenListener: ((reason: string) => void) | undefined;
  private early: Uint8Array[] = [];
  private pendingExit: BackendExit | undefined;
  /** No more output wanted: exited, discarded, handed off or taken. */
  private done = false;
  private exitSeen = false;
  /** Discarded before the keeper answered: discard once it has. */
  private discarded = false;
  private ackTo = -1;
  private ackScheduled = false;
  /** Next offset expected from the keeper. */
  private next: Offset;
  /** Input written, and what the keeper last said it received and still holds of it. */
  private inputSent = 0;
  private keeperReceived = 0;
  private keeperQueued = 0;

  constructor(link: KeeperLink, readonly sid: SessionId, start: KeptStart, limits: BufferLimits) {
    this.next = start.how === 'spawn' ? start.base : start.from;
    const request = start.how === 'spawn'
      ? { t: 'spawn' as const, sid, epoch: start.epoch, base: start.base, spec: start.spec, owner: start.owner, createdAt: start.createdAt, ...limits }
      : { t: 'attach' as const, sid, epoch: start.epoch, from: start.from, ...limits };
    this.ready = (async () => {
      const client = await link.client();
      // Registered before asking, so no event of this session can slip past.
      client.register(sid, this);
      try {
        const reply = await client.request(request);
        this.pid = Number(reply.pid);
      } catch (err) {
        client.unregister(sid, this);
        this.done = true;
        throw err;
      }
      this.client = client;
      if (this.discarded) {
        this.discarded = false;
        this.discard();
        return;
      }
      const queued = this.queue;
      this.queue = [];
      for (const m of queued) client.send(m);
      // Output can arrive (and the log confirm it) before the keeper's reply does: an ack
      // due meanwhile found no client. Unsent, the keeper would keep that output counted
      // as unconfirmed, and a full buffer would pause the program for good.
      if (this.ackTo >= 0 && !this.ackScheduled) this.flushAck();
    })();
    // The host awaits `ready`; this only keeps an unawaited failure from being unhandled.
    this.ready.catch(() => {});
  }

  private send(message: NodeToKeeper): void {
    if (this.client) this.client.send(message);
    else if (!this.done) this.queue.push(message);
  }

  // ─── Backend

  write(data: Uint8Array): void {
    if (this.done) return;
    this.inputSent += data.length;
    // Copied when queued: the caller's buffer may be reused once we return.
    this.send({ t: 'write', sid: this.sid, data: this.client ? data : Uint8Array.from(data) });
  }

  /**
   * Input not yet read by the program, as far as this node knows: what the keeper holds
   * by its last report, plus what was written since it counted (in flight, or received
   * after the report: off by less than one report step).
   */
  inputQueued(): number {
    return this.keeperQueued + (this.inputSent - this.keeperReceived);
  }

  resize(cols: number, rows: number): void {
    if (!this.done) this.send({ t: 'resize', sid: this.sid, cols, rows });
  }

  pause(): void {
    if (!this.done) this.send({ t: 'pause', sid: this.sid });
  }

  resume(): void {
    if (!this.done) this.send({ t: 'resume', sid: this.sid });
  }

  kill(signal: string): void {
    if (!this.done) this.send({ t: 'kill', sid: this.sid, signal });
  }

  onData(listener: (data: Uint8Array) => void): void {
    this.dataListener = listener;
    const early = this.early;
    this.early = [];
    for (const d of early) listener(d);
  }

  onExit(listener: (exit: BackendExit) => void): void {
    this.exitListener = listener;
    if (this.pendingExit) listener(this.pendingExit);
  }

  onTaken(listener: (reason: string) => void): void {
    this.takenListener = listener;
  }

  note(data: Uint8Array): void {
    if (!this.done) this.send({ t: 'note', sid: this.sid, data: Uint8Array.from(data) });
  }

  /** Acks are coalesced: one per turn, however many chunks the log confirmed. */
  confirmed(end: Offset): void {
    if (end <= this.ackTo) return;
    this.ackTo = end;
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => this.flushAck());
  }

  private flushAck(): void {
    this.ackScheduled = false;
    if (this.ackTo >= 0 && this.client && !this.client.closed) this.client.send({ t: 'ack', sid: this.sid, off: this.ackTo });
  }

  discard(): void {
    this.queue = [];
    const client = this.client;
    if (!client) {
      this.done = true;
      this.discarded = true;
      return;
    }
    if (this.done && !this.exitSeen) return; // handed off or taken: not ours to end
    this.done = true;
    client.unregister(this.sid, this);
    void client.request({ t: 'discard', sid: this.sid }).catch(() => {});
  }

  release(): void {
    const client = this.client;
    if (!client) return;
    this.flushAck();
    client.unregister(this.sid, this);
    client.send({ t: 'release', sid: this.sid });
  }

  async handOff(): Promise<void> {
    if (this.done && !this.exitSeen) return; // discarded, taken or lost: nothing to hand off
    this.done = true;
    await this.ready.catch(() => {});
    const client = this.client;
    if (!client) return;
    this.flushAck();
    client.unregister(this.sid, this);
    await client.request({ t: 'detach', sid: this.sid });
  }

  // ─── KeptSessionListener (events from the keeper)

  data(off: Offset, data: Uint8Array): void {
    if (this.done) return;
    if (off !== this.next) {
      // The keeper numbers every byte once; a mismatch would corrupt the stream.
      this.lost(`the keeper sent output at ${off}, expected ${this.next}`);
      return;
    }
    this.next = off + data.length;
    if (this.dataListener) this.dataListener(data);
    else this.early.push(data);
  }

  exit(exit: KeptExit): void {
    if (this.done) return;
    this.done = true;
    this.exitSeen = true;
    const e: BackendExit = { code: exit.code };
    if (exit.signal) e.signal = exit.signal;
    this.finish(e);
  }

  input(received: number, queued: number): void {
    this.keeperReceived = received;
    this.keeperQueued = queued;
  }

  detached(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.takenListener?.(reason);
  }

  lost(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.finish({ code: LOST_EXIT_CODE, signal: 'SIGHUP', reason: `${reason}: this terminal ended with it` });
  }

  private finish(exit: BackendExit): void {
    if (this.exitListener) this.exitListener(exit);
    else this.pendingExit = exit;
  }
}

/**
 * Backends with terminals in the keeper; other kinds as `fallback` has them. `limits`:
 * the keeper's buffer per terminal (see OutputBuffer).
 */
export function keptBackends(link: KeeperLink, limits: BufferLimits, fallback: BackendFactory = defaultBackends): BackendFactory {
  return {
    create(spec: OpenSpec, context: BackendContext): Backend {
      if (spec.kind !== 'pty') return fallback.create(spec, context);
      return new KeptPtyBackend(link, context.sid, {
        how: 'spawn', epoch: context.epoch, base: context.head, spec, owner: context.owner, createdAt: context.createdAt,
      }, limits);
    },
  };
}
