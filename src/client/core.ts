/**
 * The protocol client core (PROTOCOL v1 and docs/protocol.md), shared by the Node client
 * and CLI (src/client/client.ts, src/cli/attach.ts), the browser page (src/web) and the
 * load generator (bench/loadgen-worker.ts). It knows frames, not sockets: a transport
 * hands it a "send bytes" function and feeds it the bytes it receives.
 *
 *   transport (ws, WebSocket, …)            ClientCore                          caller
 *     open ─────────────▶ transportUp(send)
 *     message bytes ────▶ receive(bytes) ── decode · match ref · offsets ──▶ events.output / events.frame
 *     send(bytes) ◀────── send(frame), request(frame) → reply ◀──────────── (open, attach, in, …)
 *     close ────────────▶ transportDown(why)   pending requests fail; offsets are kept
 *
 * Per session it keeps the next output offset across transports (resume with `from`),
 * trims replayed bytes it already has, advances over `gap`s, and paces flow-control
 * acks of what the caller consumed. Reconnecting is the caller's (see link.ts, which
 * applies the retry rule of retry.ts). No Node or DOM APIs: the page bundles this file.
 */
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import type {
  AttachedFrame, ErrorFrame, ExitFrame, KilledFrame, OpenedFrame, PongFrame, ServerFrame,
} from '../protocol/frames.js';
import { classify, type RetryCause } from './retry.js';

export type { ServerFrame } from '../protocol/frames.js';

export const SUBPROTOCOL = 'switchboard.v1';
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Flow control: ack at least every this many consumed bytes… */
export const ACK_BYTES = 64 * 1024;
/** …and the rest this long after it was consumed. */
export const ACK_DELAY_MS = 50;

/** Frames as a client writes them on the wire (`ref` is assigned by `request`). */
export type OpenRequest = {
  t: 'open'; kind?: 'pty' | 'agent' | 'echo'; cmd?: string; args?: string[]; cwd?: string;
  env?: Record<string, string>; cols?: number; rows?: number; name?: string;
  /** Extensions (docs/protocol.md): resize and loss policies, a client-chosen session id. */
  policy?: 'latest' | 'smallest' | 'largest' | 'fixed'; onLoss?: 'lost' | 'restart'; sid?: string;
};
export type AttachRequest = { t: 'attach'; sid: string; from?: number; role?: 'writer' | 'viewer' };
export type KillRequest = { t: 'kill'; sid: string; signal?: string };
export type PingRequest = { t: 'ping' };
export type RequestFrame = OpenRequest | AttachRequest | KillRequest | PingRequest;
export type ClientFrame =
  | (RequestFrame & { ref?: number })
  | { t: 'in'; sid: string; data: Uint8Array; n?: number }
  | { t: 'resize'; sid: string; cols: number; rows: number }
  | { t: 'ack'; sid: string; off: number }
  | { t: 'detach'; sid: string };

export type ReplyTo<F extends RequestFrame> =
  F extends OpenRequest ? OpenedFrame
    : F extends AttachRequest ? AttachedFrame
      : F extends KillRequest ? KilledFrame
        : PongFrame;

/**
 * A refused upgrade, an `error` frame, a lost connection or a missing reply. `code` is
 * the wire code (`unauthorized`, …; `unavailable` when the transport failed),
 * `failure` what the retry rule (retry.ts) decides on, `temporary` and `retryMs` its
 * verdict and the server's hint.
 */
export class SwitchboardClientError extends Error {
  readonly temporary: boolean;
  readonly retryMs: number | undefined;
  readonly failure: RetryCause;
  constructor(readonly code: string, message: string, readonly status?: number, failure?: RetryCause) {
    super(message);
    this.name = 'SwitchboardClientError';
    this.failure = failure ?? { kind: 'error', code, msg: message };
    const { temporary, hintMs } = classify(this.failure);
    this.temporary = temporary;
    this.retryMs = hintMs;
  }
}

/** The error for an `error` frame: the server's code, message, `temporary` and `retryMs`. */
export function errorFromFrame(f: ErrorFrame): SwitchboardClientError {
  const cause: RetryCause = { kind: 'error', code: f.code, msg: f.msg, temporary: f.temporary };
  if (f.retryMs !== undefined) cause.retryMs = f.retryMs;
  return new SwitchboardClientError(f.code, `${f.code}: ${f.msg}`, undefined, cause);
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder();

/**
 * What one session's output looked like to this client. `next` is the offset to resume
 * from; `chunks` holds the bytes received from `start` on, exactly once (an `out` that
 * overlaps what was already received is trimmed and counted in `duplicateBytes`; a jump
 * forward without a `gap` frame is counted in `missingBytes`, one with a gap in
 * `gapBytes`). A snapshot (`snap: true`) is kept apart and is not part of the stream.
 */
export class SessionOutput {
  /** The offset of the first byte received; undefined until output or a snapshot arrives. */
  start: number | undefined;
  next: number | undefined;
  readonly chunks: Uint8Array[] = [];
  length = 0;
  snapshot: Uint8Array | undefined;
  readonly gaps: Array<{ from: number; to: number }> = [];
  duplicateBytes = 0;
  missingBytes = 0;
  gapBytes = 0;
  exit: { code: number; signal?: string; reason?: string } | undefined;
  /** Opened or attached on the current transport: acks (and input) may be sent. */
  live = false;
  /** Flow control: what the caller consumed, and what this transport was told. */
  consumed: number | undefined;
  acked: number | undefined;
  ackTimer: ReturnType<typeof setTimeout> | undefined;

  /** `keep: false` tracks offsets only, for clients that write output straight through. */
  constructor(readonly sid: string, readonly keep = true) {}

  /** Records an `out` frame; returns the bytes that are new (possibly empty). */
  push(off: number, data: Uint8Array, snap: boolean): Uint8Array {
    if (snap) {
      this.snapshot = data.slice();
      this.start ??= off;
      this.next = off;
      return EMPTY;
    }
    const next = this.next;
    let bytes = data;
    if (next !== undefined && off !== next) {
      if (off < next) {
        const overlap = Math.min(next - off, bytes.length);
        this.duplicateBytes += overlap;
        if (overlap === bytes.length) return EMPTY;
        bytes = bytes.subarray(overlap);
        off += overlap;
      } else {
        this.missingBytes += off - next;
      }
    }
    if (bytes.length === 0) return EMPTY;
    this.start ??= off;
    if (this.keep) this.chunks.push(bytes);
    this.length += bytes.length;
    this.next = off + bytes.length;
    return bytes;
  }

  gap(from: number, to: number): void {
    this.gaps.push({ from, to });
    if (this.next === undefined || this.next < to) {
      this.gapBytes += to - Math.max(from, this.next ?? from);
      this.next = to;
    }
  }

  bytes(): Uint8Array {
    const all = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }

  text(): string {
    return utf8.decode(this.bytes());
  }
}

export interface CoreEvents<S extends SessionOutput = SessionOutput> {
  /**
   * New output of `session`: `data` ends at offset `end` and holds only bytes not seen
   * before; or, with `snap`, a screen snapshot as of `end`. A caller that acks calls
   * `consumed(sid, end)` once it has used them.
   */
  output?(session: S, data: Uint8Array, end: number, snap: boolean): void;
  /** Every frame, after the core's own bookkeeping. */
  frame?(frame: ServerFrame): void;
  /** Bytes that are not a frame (the caller decides whether that is worth a word). */
  undecodable?(err: unknown): void;
}

export interface CoreOptions<S extends SessionOutput> {
  /** Reply timeout of `request` (default 10 s). */
  timeoutMs?: number;
  /** Keep every session's output bytes (default true). */
  keepOutput?: boolean;
  /** Flow control pacing: ack every ackBytes consumed (default 64 KiB), the rest after ackDelayMs (default 50; 0: only whole steps). */
  ackBytes?: number;
  ackDelayMs?: number;
  /** Makes the per-session record (a subclass with Node conveniences, say). */
  newSession?: (sid: string, keep: boolean) => S;
}

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** For `attach` with `from`: where the session's output resumes. */
  from?: number;
}

export class ClientCore<S extends SessionOutput = SessionOutput> {
  readonly sessions = new Map<string, S>();
  readonly timeoutMs: number;
  private readonly keepOutput: boolean;
  private readonly ackBytes: number;
  private readonly ackDelayMs: number;
  private readonly newSession: (sid: string, keep: boolean) => S;
  private sendBytes: ((bytes: Uint8Array) => void) | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextRef = 1;

  constructor(public events: CoreEvents<S> = {}, options: CoreOptions<S> = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.keepOutput = options.keepOutput ?? true;
    this.ackBytes = options.ackBytes ?? ACK_BYTES;
    this.ackDelayMs = options.ackDelayMs ?? ACK_DELAY_MS;
    this.newSession = options.newSession ?? ((sid, keep) => new SessionOutput(sid, keep) as S);
  }

  get isUp(): boolean {
    return this.sendBytes !== undefined;
  }

  /** A transport is open: frames go to `send` from now on. */
  transportUp(send: (bytes: Uint8Array) => void): void {
    this.sendBytes = send;
  }

  /**
   * The transport is gone: requests waiting for a reply fail with `err`, sessions are no
   * longer attached (offsets are kept, to resume on the next transport).
   */
  transportDown(err: SwitchboardClientError): void {
    this.sendBytes = undefined;
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SwitchboardClientError(err.code, `${err.message} before the reply to ref ${ref}`, err.status, err.failure));
    }
    this.pending.clear();
    for (const s of this.sessions.values()) {
      s.live = false;
      s.acked = undefined;
      if (s.ackTimer !== undefined) clearTimeout(s.ackTimer);
      s.ackTimer = undefined;
    }
  }

  encode(frame: ClientFrame): Uint8Array {
    return encodeValue(frame);
  }

  /** Sends a frame; false when no transport is up (the frame is dropped). */
  send(frame: ClientFrame): boolean {
    if (!this.sendBytes) return false;
    this.sendBytes(encodeValue(frame));
    return true;
  }

  /**
   * Sends a request with a fresh `ref` and resolves with the reply carrying that ref;
   * an `error` reply rejects with a SwitchboardClientError carrying its code.
   */
  request<F extends RequestFrame>(frame: F, timeoutMs = this.timeoutMs): Promise<ReplyTo<F>> {
    const ref = this.nextRef++;
    if (!this.sendBytes) return Promise.reject(new SwitchboardClientError('unavailable', 'not connected', undefined, { kind: 'unreachable', message: 'not connected' }));
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        const msg = `no reply to '${frame.t}' (ref ${ref}) within ${timeoutMs} ms`;
        reject(new SwitchboardClientError('unavailable', msg, undefined, { kind: 'error', code: 'unavailable', msg, temporary: true }));
      }, timeoutMs);
      const p: Pending = { resolve, reject, timer };
      if (frame.t === 'attach' && frame.from !== undefined) p.from = frame.from;
      this.pending.set(ref, p);
      this.send({ ...frame, ref } as ClientFrame);
    }) as Promise<ReplyTo<F>>;
  }

  /** The record of `sid` (created empty on first use). */
  session(sid: string): S {
    let s = this.sessions.get(sid);
    if (!s) {
      s = this.newSession(sid, this.keepOutput);
      this.sessions.set(sid, s);
    }
    return s;
  }

  /** Stops tracking `sid` (a long-lived client watching many sessions). */
  forget(sid: string): void {
    const s = this.sessions.get(sid);
    if (s?.ackTimer !== undefined) clearTimeout(s.ackTimer);
    this.sessions.delete(sid);
  }

  /** Tells the server at once that `sid`'s output was consumed up to `off` (default: all received). */
  ack(sid: string, off = this.sessions.get(sid)?.next): void {
    if (off !== undefined) this.send({ t: 'ack', sid, off });
  }

  /**
   * Flow control as a terminal does it: the caller has used `sid`'s output up to `end`
   * (parsed it, written it out). Acks go out every `ackBytes`, the rest `ackDelayMs`
   * later, and the first one on each transport at once.
   */
  consumed(sid: string, end: number): void {
    const s = this.sessions.get(sid);
    if (!s) return;
    if (s.consumed === undefined || end > s.consumed) s.consumed = end;
    if (s.acked === undefined || s.consumed - s.acked >= this.ackBytes) this.flushAck(s);
    else if (this.ackDelayMs > 0 && s.ackTimer === undefined) {
      s.ackTimer = setTimeout(() => {
        s.ackTimer = undefined;
        this.flushAck(s);
      }, this.ackDelayMs);
    }
  }

  private flushAck(s: S): void {
    if (s.ackTimer !== undefined) clearTimeout(s.ackTimer);
    s.ackTimer = undefined;
    if (!s.live || s.consumed === undefined || s.consumed === s.acked) return;
    if (this.send({ t: 'ack', sid: s.sid, off: s.consumed })) s.acked = s.consumed;
  }

  /** Decodes and applies one received message; returns the frame (undefined if it is not one). */
  receive(bytes: Uint8Array): ServerFrame | undefined {
    let frame: ServerFrame;
    try {
      frame = decodeMessage(bytes) as ServerFrame;
    } catch (err) {
      this.events.undecodable?.(err);
      return undefined;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.t !== 'string') {
      this.events.undecodable?.(new Error('a message that is not a frame'));
      return undefined;
    }
    switch (frame.t) {
      case 'out': {
        const s = this.sessions.get(frame.sid) ?? this.session(frame.sid);
        const snap = frame.snap === true;
        const fresh = s.push(frame.off, frame.data, snap);
        if ((snap || fresh.length > 0) && this.events.output) this.events.output(s, snap ? frame.data : fresh, s.next!, snap);
        break;
      }
      case 'gap':
        this.session(frame.sid).gap(frame.from, frame.to);
        break;
      case 'exit':
        this.session(frame.sid).exit = exitOf(frame);
        break;
      case 'opened':
      case 'attached':
      case 'killed':
      case 'pong':
      case 'error':
        this.reply(frame);
        break;
      default:
        break;
    }
    this.events.frame?.(frame);
    return frame;
  }

  private reply(frame: OpenedFrame | AttachedFrame | KilledFrame | PongFrame | ErrorFrame): void {
    const ref = frame.ref;
    const p = ref === undefined ? undefined : this.pending.get(ref);
    if (frame.t === 'opened' || frame.t === 'attached') {
      // Before resolving: output on this transport may follow in the same read.
      const s = this.session(frame.sid);
      s.live = true;
      if (frame.t === 'opened') s.next ??= 0;
      else if (p?.from !== undefined) s.next ??= p.from;
      this.flushAck(s);
    }
    if (!p || ref === undefined) return;
    this.pending.delete(ref);
    clearTimeout(p.timer);
    if (frame.t === 'error') p.reject(errorFromFrame(frame));
    else p.resolve(frame);
  }
}

function exitOf(f: ExitFrame): NonNullable<SessionOutput['exit']> {
  const exit: NonNullable<SessionOutput['exit']> = { code: f.code };
  if (f.signal) exit.signal = f.signal;
  if (f.reason) exit.reason = f.reason;
  return exit;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * A session id chosen by the client (docs/protocol.md, `open` `sid`): 128 random bits as
 * 22 URL-safe base64 characters, like the server's. Web Crypto: Node 20 and browsers.
 */
export function newClientSessionId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += B64URL[(acc >> bits) & 63];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += B64URL[(acc << (6 - bits)) & 63];
  return out;
}
