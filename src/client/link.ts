/**
 * One terminal session held across any number of connections: how `switchboard attach`
 * (src/cli/attach.ts) and the browser page (src/web/terminal.ts) stay on a session while
 * sockets drop, nodes drain and requests are refused. Transport-agnostic: the caller
 * passes a `dial` that opens a socket of its kind (ws in Node, WebSocket in the browser).
 *
 *            ┌──────── after the retry delay, or reconnectNow() ────────┐
 *            ▼                                                          │
 *   start ─▶ connecting ──opened / attached──▶ live ──bye, close, ──▶ waiting
 *            │                                        temporary error   ▲
 *            └──── temporary refusal, lost connection ──────────────────┘
 *   any ──exit, permanent error, stop()──▶ done
 *
 * - A new session is opened with a client-chosen `sid` (docs/protocol.md), so a retried
 *   `open` whose first attempt did take effect gets `conflict` and turns into an attach
 *   from offset 0 instead of leaving an orphan session behind.
 * - Reconnects re-attach with `from: next`, the offset after the last byte received, so
 *   output is neither lost nor repeated (ClientCore trims overlaps, advances over gaps).
 * - Input typed while not live is queued (bounded) and sent once live again.
 * - Flow control: the caller reports what it consumed (`consumed(end)`, after writing to
 *   the terminal) and ClientCore paces the acks.
 * - Every failure goes through the one retry rule (retry.ts): retry after a jittered,
 *   capped backoff no sooner than the server's `retryMs`, or end with the server's message.
 */
import { ClientCore, newClientSessionId, SwitchboardClientError, type OpenRequest } from './core.js';
import { causeCode, DEFAULT_RETRY_POLICY, describeCause, retryDecision, type RetryCause, type RetryPolicy } from './retry.js';

/** A connection as the link sees it; `close` is graceful and may be called more than once. */
export interface Transport {
  send(bytes: Uint8Array): void;
  close(): void;
}

/** What a transport reports, always asynchronously (never from inside `dial`). */
export interface TransportHandlers {
  open(): void;
  message(bytes: Uint8Array): void;
  /** Once: the connection closed (`close`), was refused at upgrade (`refused`) or never came up (`unreachable`). */
  closed(why: RetryCause): void;
}

export type Dial = (handlers: TransportHandlers) => Transport;

export type LinkPhase = 'idle' | 'connecting' | 'live' | 'waiting' | 'done';

export interface SessionExit {
  code: number;
  signal?: string;
  reason?: string;
}

/** How a link ended by itself: the session exited, or a failure no retry fixes. */
export type LinkEnd = { exit: SessionExit } | { failure: { code: string; message: string } };

export interface LinkEvents {
  /**
   * Output for the terminal: `data` ends at offset `end` and is new (never a repeat);
   * with `snap`, a screen snapshot to draw on a blank screen. Call `consumed(end)` once
   * it is written out.
   */
  output(data: Uint8Array, end: number, snap: boolean): void;
  connecting?(attempt: number): void;
  /** Output flows; `opened` for a new session, `resumed` after a reconnect. */
  live?(info: { sid: string; node: string; opened: boolean; resumed: boolean }): void;
  /** A reconnect is scheduled in `delayMs`, and why. */
  waiting?(info: { delayMs: number; why: string; attempt: number }): void;
  /** Bytes [from, to) can no longer be replayed. */
  gap?(from: number, to: number): void;
  owner?(node: string): void;
  /** Something worth a line that changes nothing (an `error` about a frame we sent). */
  notice?(text: string): void;
  ended?(end: LinkEnd): void;
}

export interface LinkOptions {
  dial: Dial;
  /** The session to attach to; without it a new one is opened with `open()`'s fields. */
  sid?: string;
  open?: () => Omit<OpenRequest, 't' | 'sid'>;
  /** The local terminal's size: a `resize` follows open/attach when the session's differs. */
  size?: () => { cols: number; rows: number };
  role?: 'writer' | 'viewer';
  events: LinkEvents;
  /** False: a first connection that cannot reach the server ends the link (a CLI with a wrong --url). Default true. */
  retryFirstDial?: boolean;
  policy?: RetryPolicy;
  random?: () => number;
  timeoutMs?: number;
  /** Input kept while not connected (default 64 KiB); beyond it, input is dropped. */
  maxQueuedInput?: number;
}

const MAX_QUEUED_INPUT = 64 * 1024;

export class SessionLink {
  readonly core: ClientCore;
  readonly sid: string;
  private mode: 'open' | 'attach';
  private state: LinkPhase = 'idle';
  private transport: Transport | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Failures in a row, for the backoff; 0 once live. */
  private attempt = 0;
  private everLive = false;
  private opensSent = 0;
  private openedSize: { cols: number; rows: number } | undefined;
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  /** Connections made so far. */
  connects = 0;
  node = '';

  constructor(private readonly options: LinkOptions) {
    this.sid = options.sid ?? newClientSessionId();
    this.mode = options.sid === undefined ? 'open' : 'attach';
    this.core = new ClientCore({
      output: (s, data, end, snap) => {
        if (s.sid === this.sid && this.state !== 'done') this.options.events.output(data, end, snap);
      },
      frame: (f) => {
        switch (f.t) {
          case 'gap':
            if (f.sid === this.sid) this.options.events.gap?.(f.from, f.to);
            return;
          case 'owner':
            if (f.sid !== this.sid) return;
            this.node = f.node;
            this.options.events.owner?.(f.node);
            return;
          case 'exit':
            if (f.sid === this.sid) this.finish({ exit: this.core.session(this.sid).exit! });
            return;
          case 'bye':
            this.drop({ kind: 'bye', reason: f.reason, retryMs: f.retryMs });
            return;
          case 'error': {
            if (f.ref !== undefined) return; // a reply: the request's promise has it
            const cause: RetryCause = { kind: 'error', code: f.code, msg: f.msg, temporary: f.temporary };
            if (f.retryMs !== undefined) cause.retryMs = f.retryMs;
            // `unavailable` about our session without a request: the node stopped
            // streaming it to us (its replay log failed). Start over with `from`.
            if (f.sid === this.sid && f.code === 'unavailable') this.drop(cause);
            else this.options.events.notice?.(describeCause(cause));
            return;
          }
          default:
        }
      },
    }, { keepOutput: false, timeoutMs: options.timeoutMs });
  }

  get phase(): LinkPhase {
    return this.state;
  }

  /** The session exists: it was given, or our `open` was answered. */
  get established(): boolean {
    return this.everLive || this.mode === 'attach';
  }

  /** The offset of the next output byte expected (undefined before any output). */
  get next(): number | undefined {
    return this.core.sessions.get(this.sid)?.next;
  }

  start(): void {
    if (this.state === 'idle') this.connect();
  }

  /** Bytes for the session's input: sent now when live, else queued for the next connection. */
  input(data: Uint8Array): void {
    if (this.state === 'done') return;
    if (this.state === 'live' && this.core.send({ t: 'in', sid: this.sid, data })) return;
    if (this.queuedBytes + data.length > (this.options.maxQueuedInput ?? MAX_QUEUED_INPUT)) return;
    this.queued.push(data.slice());
    this.queuedBytes += data.length;
  }

  resize(cols: number, rows: number): void {
    if (this.state === 'live') this.core.send({ t: 'resize', sid: this.sid, cols, rows });
  }

  /** Flow control: output up to `end` was written out. */
  consumed(end: number): void {
    this.core.consumed(this.sid, end);
  }

  /** Skips the wait of a scheduled reconnect. */
  reconnectNow(): void {
    if (this.state === 'waiting') this.connect();
  }

  /** Leaves the session running (`detach`) and ends the link. */
  detach(): void {
    if (this.state === 'live') this.core.send({ t: 'detach', sid: this.sid });
    this.stop();
  }

  /** Ends the link without a word to the server; `ended` is not called. */
  stop(): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.close();
  }

  // ─── connections ────────────────────────────────────────────────────────────

  private connect(): void {
    this.clearTimer();
    this.state = 'connecting';
    this.connects++;
    this.options.events.connecting?.(this.attempt);
    const t: Transport = this.options.dial({
      open: () => {
        if (this.transport !== t) return;
        this.core.transportUp((bytes) => t.send(bytes));
        this.begin(t);
      },
      message: (bytes) => {
        if (this.transport === t) this.core.receive(bytes);
      },
      closed: (why) => {
        if (this.transport !== t) return;
        this.transport = undefined;
        this.down(why);
        if (!this.everLive && why.kind === 'unreachable' && this.options.retryFirstDial === false) this.fail(why);
        else this.retryOrEnd(why);
      },
    });
    this.transport = t;
  }

  /** Opens or attaches on a transport that just came up. */
  private begin(t: Transport): void {
    let request: Promise<{ t: 'opened' | 'attached'; node: string; cols?: number; rows?: number }>;
    if (this.mode === 'open') {
      const spec = this.options.open?.() ?? {};
      this.openedSize = spec.cols !== undefined && spec.rows !== undefined ? { cols: spec.cols, rows: spec.rows } : undefined;
      this.opensSent++;
      request = this.core.request({ ...spec, t: 'open', sid: this.sid });
    } else {
      const from = this.next;
      request = this.core.request({ t: 'attach', sid: this.sid, role: this.options.role ?? 'writer', ...(from === undefined ? {} : { from }) });
    }
    request.then(
      (reply) => {
        if (this.transport === t && this.state === 'connecting') this.becameLive(reply);
      },
      (err: unknown) => {
        if (this.transport !== t || this.state !== 'connecting') return;
        const e = err instanceof SwitchboardClientError ? err : new SwitchboardClientError('internal', String(err));
        if (e.code === 'conflict' && this.mode === 'open' && this.opensSent > 1) {
          // An earlier `open` of ours took effect after all: attach to what it made.
          this.mode = 'attach';
          const s = this.core.session(this.sid);
          s.next ??= 0;
          this.begin(t);
          return;
        }
        this.drop(e.failure);
      },
    );
  }

  private becameLive(reply: { t: 'opened' | 'attached'; node: string; cols?: number; rows?: number }): void {
    const resumed = this.everLive;
    this.mode = 'attach';
    this.state = 'live';
    this.everLive = true;
    this.attempt = 0;
    this.node = reply.node;
    for (const data of this.queued) this.core.send({ t: 'in', sid: this.sid, data });
    this.queued = [];
    this.queuedBytes = 0;
    const size = this.options.size?.();
    const had = reply.t === 'opened' ? this.openedSize : { cols: reply.cols, rows: reply.rows };
    if (size && (size.cols !== had?.cols || size.rows !== had?.rows)) this.resize(size.cols, size.rows);
    this.options.events.live?.({ sid: this.sid, node: this.node, opened: reply.t === 'opened', resumed });
  }

  /** Ends the current transport for `cause` and applies the retry rule to it. */
  private drop(cause: RetryCause): void {
    if (!this.transport) return;
    this.close();
    this.retryOrEnd(cause);
  }

  private retryOrEnd(cause: RetryCause): void {
    if (this.state === 'done') return;
    const attempt = this.attempt++;
    const d = retryDecision(cause, attempt, this.options.random, this.options.policy ?? DEFAULT_RETRY_POLICY);
    if (!d.retry) {
      this.finish({ failure: { code: d.code, message: d.message } });
      return;
    }
    this.state = 'waiting';
    this.timer = setTimeout(() => this.connect(), d.delayMs);
    this.options.events.waiting?.({ delayMs: d.delayMs, why: d.why, attempt });
  }

  private fail(cause: RetryCause): void {
    this.finish({ failure: { code: causeCode(cause), message: describeCause(cause) } });
  }

  private finish(end: LinkEnd): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.close();
    this.options.events.ended?.(end);
  }

  private close(): void {
    this.clearTimer();
    const t = this.transport;
    this.transport = undefined;
    if (t) {
      this.down({ kind: 'close', code: 1000, reason: 'closed by the client' });
      t.close();
    }
  }

  private down(why: RetryCause): void {
    this.core.transportDown(new SwitchboardClientError(causeCode(why), describeCause(why), undefined, why));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
