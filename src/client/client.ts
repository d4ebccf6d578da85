/**
 * A small Node client for protocol v1 (/work/shared/PROTOCOL.md) over the `ws` package,
 * shared by the CLI, the tests and the bench.
 *
 *   const c = await SwitchboardClient.connect('http://127.0.0.1:7070', { token });
 *   const { sid } = await c.request({ t: 'open', kind: 'pty' });
 *   c.send({ t: 'in', sid, data: Buffer.from('echo hi\r') });
 *   await c.waitForOutput(sid, 'hi');
 *
 * It tracks, per session, the next output offset and the bytes received, so a caller
 * that reconnects re-attaches with `from: c.sessionOutput(sid).next` and loses nothing.
 * It never reconnects on its own: what "resume" means (attach role, input replay, UI)
 * belongs to the caller.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import type {
  AttachedFrame, ErrorFrame, KilledFrame, OpenedFrame, PongFrame, ServerFrame,
} from '../protocol/frames.js';

export type { ServerFrame } from '../protocol/frames.js';

export const SUBPROTOCOL = 'switchboard.v1';
const DEFAULT_TIMEOUT_MS = 10_000;

/** Frames as a client writes them on the wire (`ref` is assigned by `request`). */
export type OpenRequest = {
  t: 'open'; kind?: 'pty' | 'agent' | 'echo'; cmd?: string; args?: string[]; cwd?: string;
  env?: Record<string, string>; cols?: number; rows?: number; name?: string;
  /** Extensions (docs/protocol.md). */
  policy?: 'latest' | 'smallest' | 'largest' | 'fixed'; onLoss?: 'lost' | 'restart';
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

type ReplyTo<F extends RequestFrame> =
  F extends OpenRequest ? OpenedFrame
    : F extends AttachRequest ? AttachedFrame
      : F extends KillRequest ? KilledFrame
        : PongFrame;

export interface ConnectOptions {
  token?: string;
  /** Sent as the Origin header, as a browser would. */
  origin?: string;
  headers?: Record<string, string>;
  /** Default `['switchboard.v1']`. */
  protocols?: string[];
  timeoutMs?: number;
  /** Keep every session's received bytes for `sessionOutput(sid).bytes()` (default true). */
  keepOutput?: boolean;
}

/** A refused upgrade or an `error` frame; `code` is the wire code (`unauthorized`, …). */
export class SwitchboardClientError extends Error {
  constructor(readonly code: string, message: string, readonly status?: number) {
    super(message);
    this.name = 'SwitchboardClientError';
  }
}

const HTTP_CODES: Record<number, string> = { 401: 'unauthorized', 403: 'forbidden', 429: 'rate_limited', 503: 'unavailable' };

/**
 * What one session's output looked like to this client. `next` is the offset to resume
 * from; `chunks` holds the bytes received from `start` on, exactly once (an `out` that
 * overlaps what was already received is trimmed and counted in `duplicateBytes`; a jump
 * forward without a `gap` frame is counted in `missingBytes`). A snapshot (`snap: true`)
 * is kept apart and is not part of the byte stream.
 */
export class SessionOutput {
  /** The offset of the first byte received; undefined until output or a snapshot arrives. */
  start: number | undefined;
  next: number | undefined;
  readonly chunks: Buffer[] = [];
  length = 0;
  snapshot: Buffer | undefined;
  readonly gaps: Array<{ from: number; to: number }> = [];
  duplicateBytes = 0;
  missingBytes = 0;
  exit: { code: number; signal?: string } | undefined;

  /** `keep: false` tracks offsets only, for long-lived clients that write output straight through. */
  constructor(readonly keep = true) {}

  /** Records an `out` frame; returns the bytes that are new (possibly empty). */
  push(off: number, data: Uint8Array, snap: boolean): Buffer {
    if (snap) {
      this.snapshot = Buffer.from(data);
      this.start ??= off;
      this.next = off;
      return Buffer.alloc(0);
    }
    let bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.next === undefined) this.start = this.next = off;
    if (off < this.next) {
      const overlap = Math.min(this.next - off, bytes.length);
      this.duplicateBytes += overlap;
      bytes = bytes.subarray(overlap);
      off += overlap;
    } else if (off > this.next) {
      this.missingBytes += off - this.next;
    }
    if (bytes.length > 0) {
      if (this.keep) this.chunks.push(bytes);
      this.length += bytes.length;
      this.next = off + bytes.length;
    }
    return bytes;
  }

  gap(from: number, to: number): void {
    this.gaps.push({ from, to });
    if (this.next === undefined || this.next < to) this.next = to;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  text(): string {
    return this.bytes().toString('utf8');
  }
}

interface Pending {
  resolve(frame: ServerFrame): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface ClientEvents {
  frame: [ServerFrame];
  close: [code: number, reason: string];
  error: [Error];
}

export class SwitchboardClient extends EventEmitter<ClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private readonly outputs = new Map<string, SessionOutput>();
  private nextRef = 1;
  /** Resolves once the socket is closed, for whatever reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed = false;

  constructor(readonly ws: WebSocket, readonly timeoutMs = DEFAULT_TIMEOUT_MS, readonly keepOutput = true) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    // An 'error' without a listener would throw; surface it only to those who listen.
    ws.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.isClosed = true;
        const text = reason.toString();
        for (const [ref, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new SwitchboardClientError('unavailable', `socket closed (${code}${text ? ` ${text}` : ''}) before the reply to ref ${ref}`));
        }
        this.pending.clear();
        this.emit('close', code, text);
        resolve({ code, reason: text });
      });
    });
  }

  /**
   * Opens a socket. `url` is either the WebSocket URL (`ws://host:port/v1/ws`) or the
   * server's base URL (`http://host:port`), to which `/v1/ws` is added.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<SwitchboardClient> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const ws = new WebSocket(wsUrl(url), options.protocols ?? [SUBPROTOCOL], {
      headers,
      ...(options.origin ? { origin: options.origin } : {}),
      handshakeTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let message = Buffer.concat(parts).toString('utf8').trim();
          try {
            const body = JSON.parse(message) as { message?: string };
            if (body.message) message = body.message;
          } catch {
            // not JSON: keep the text
          }
          reject(new SwitchboardClientError(HTTP_CODES[status] ?? 'internal', `HTTP ${status}${message ? `: ${message}` : ''}`, status));
          // After rejecting: terminating emits an 'error' of its own.
          ws.terminate();
        });
      });
      ws.once('error', reject);
    });
    return new SwitchboardClient(ws, options.timeoutMs, options.keepOutput);
  }

  send(frame: ClientFrame): void {
    this.ws.send(encodeValue(frame));
  }

  /**
   * Sends a request with a fresh `ref` and resolves with the reply carrying that ref;
   * an `error` reply rejects with a SwitchboardClientError carrying its `code`.
   */
  request<F extends RequestFrame>(frame: F, timeoutMs = this.timeoutMs): Promise<ReplyTo<F>> {
    const ref = this.nextRef++;
    if (this.isClosed) return Promise.reject(new SwitchboardClientError('unavailable', 'the socket is closed'));
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new SwitchboardClientError('unavailable', `no reply to '${frame.t}' (ref ${ref}) within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.send({ ...frame, ref } as ClientFrame);
    }) as Promise<ReplyTo<F>>;
  }

  /** The output tracking of `sid` (created empty on first use). */
  sessionOutput(sid: string): SessionOutput {
    let out = this.outputs.get(sid);
    if (!out) {
      out = new SessionOutput(this.keepOutput);
      this.outputs.set(sid, out);
    }
    return out;
  }

  /** Stops tracking `sid` (a long-lived client watching many sessions). */
  forget(sid: string): void {
    this.outputs.delete(sid);
  }

  /** Tells the server we consumed `sid`'s output up to `off` (default: all received). */
  ack(sid: string, off = this.sessionOutput(sid).next): void {
    if (off !== undefined && !this.isClosed) this.send({ t: 'ack', sid, off });
  }

  /** Resolves with the first frame (from now on) matching `pred`. */
  waitForFrame<T extends ServerFrame = ServerFrame>(pred: (f: ServerFrame) => boolean, timeoutMs = this.timeoutMs): Promise<T> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('frame', onFrame);
        this.off('close', onClose);
      };
      const onFrame = (f: ServerFrame): void => {
        if (!pred(f)) return;
        cleanup();
        resolve(f as T);
      };
      const onClose = (code: number): void => {
        cleanup();
        reject(new SwitchboardClientError('unavailable', `socket closed (${code}) while waiting for a frame`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new SwitchboardClientError('unavailable', `no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('frame', onFrame);
      this.on('close', onClose);
    });
  }

  /** Resolves once `sid`'s received output contains `needle` (or has `needle` bytes, for a number). */
  async waitForOutput(sid: string, needle: string | RegExp | number, timeoutMs = this.timeoutMs): Promise<SessionOutput> {
    const out = this.sessionOutput(sid);
    const done = (): boolean =>
      typeof needle === 'number' ? out.length >= needle
        : typeof needle === 'string' ? out.text().includes(needle) : needle.test(out.text());
    if (!done()) {
      await this.waitForFrame((f) => f.t === 'out' && f.sid === sid && done(), timeoutMs).catch((err: Error) => {
        throw new SwitchboardClientError('unavailable', `${err.message}; output of ${sid} so far: ${JSON.stringify(out.text().slice(-300))}`);
      });
    }
    return out;
  }

  /** Closes gracefully and resolves when closed. */
  close(code = 1000, reason = ''): Promise<{ code: number; reason: string }> {
    if (!this.isClosed) this.ws.close(code, reason);
    return this.closed;
  }

  /** Drops the connection without a close handshake, as a network failure would. */
  terminate(): void {
    this.ws.terminate();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.emit('error', new SwitchboardClientError('bad_frame', 'the server sent a text frame'));
      return;
    }
    let frame: ServerFrame;
    try {
      frame = decodeMessage(data) as ServerFrame;
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
      return;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.t !== 'string') return;
    switch (frame.t) {
      case 'out':
        this.sessionOutput(frame.sid).push(frame.off, frame.data, frame.snap === true);
        break;
      case 'gap':
        this.sessionOutput(frame.sid).gap(frame.from, frame.to);
        break;
      case 'exit':
        this.sessionOutput(frame.sid).exit = frame.signal ? { code: frame.code, signal: frame.signal } : { code: frame.code };
        break;
      case 'opened':
      case 'attached':
      case 'killed':
      case 'pong':
      case 'error': {
        const ref = frame.ref;
        const p = ref === undefined ? undefined : this.pending.get(ref);
        if (p && ref !== undefined) {
          this.pending.delete(ref);
          clearTimeout(p.timer);
          if (frame.t === 'error') p.reject(replyError(frame));
          else p.resolve(frame);
        }
        break;
      }
      default:
        break;
    }
    this.emit('frame', frame);
  }
}

function replyError(frame: ErrorFrame): SwitchboardClientError {
  return new SwitchboardClientError(frame.code, `${frame.code}: ${frame.msg}`);
}

/** `http://h:p` → `ws://h:p/v1/ws`; a ws(s) URL with a path is kept as is. */
export function wsUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/ws';
  return u.toString();
}

/** `ws://h:p/v1/ws` → `http://h:p` (for the HTTP API next to the socket). */
export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  return `${u.protocol}//${u.host}`;
}
