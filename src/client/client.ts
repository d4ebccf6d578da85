/**
 * The Node transport of the protocol client: ClientCore (core.ts) over the `ws` package.
 *
 * `SwitchboardClient` is one socket, for tests and scripts:
 *
 *   const c = await SwitchboardClient.connect('http://127.0.0.1:7070', { token });
 *   const { sid } = await c.request({ t: 'open', kind: 'pty' });
 *   c.send({ t: 'in', sid, data: Buffer.from('echo hi\r') });
 *   await c.waitForOutput(sid, 'hi');
 *
 * It tracks, per session, the next output offset and the bytes received, so a caller
 * that reconnects re-attaches with `from: c.sessionOutput(sid).next` and loses nothing.
 * It never reconnects on its own. `wsDial` gives SessionLink (link.ts) its sockets, for
 * a session held across reconnects under the retry rule (the CLI's `attach`).
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import {
  ClientCore, DEFAULT_TIMEOUT_MS, SessionOutput as CoreSessionOutput, SUBPROTOCOL, SwitchboardClientError,
  type ClientFrame, type ReplyTo, type RequestFrame, type ServerFrame,
} from './core.js';
import type { Dial } from './link.js';
import { causeCode, describeCause, type RetryCause } from './retry.js';

export {
  SUBPROTOCOL, SwitchboardClientError,
  type AttachRequest, type ClientFrame, type KillRequest, type OpenRequest, type PingRequest, type RequestFrame, type ServerFrame,
} from './core.js';

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

/** ClientCore's session record with Buffers, for Node callers. */
export class SessionOutput extends CoreSessionOutput {
  override bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  override text(): string {
    return this.bytes().toString('utf8');
  }
}

export interface ClientEvents {
  frame: [ServerFrame];
  close: [code: number, reason: string];
  error: [Error];
}

export class SwitchboardClient extends EventEmitter<ClientEvents> {
  readonly core: ClientCore<SessionOutput>;
  /** Resolves once the socket is closed, for whatever reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed = false;

  constructor(readonly ws: WebSocket, readonly timeoutMs = DEFAULT_TIMEOUT_MS, readonly keepOutput = true) {
    super();
    this.core = new ClientCore<SessionOutput>({
      frame: (f) => this.emit('frame', f),
      undecodable: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err as Error);
      },
    }, { timeoutMs, keepOutput, newSession: (sid, keep) => new SessionOutput(sid, keep) });
    this.core.transportUp((bytes) => ws.send(bytes));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.core.receive(data);
      else if (this.listenerCount('error') > 0) this.emit('error', new SwitchboardClientError('bad_frame', 'the server sent a text frame'));
    });
    // An 'error' without a listener would throw; surface it only to those who listen.
    ws.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.isClosed = true;
        const text = reason.toString();
        const why: RetryCause = { kind: 'close', code, reason: text };
        this.core.transportDown(new SwitchboardClientError('unavailable', `socket closed (${code}${text ? ` ${text}` : ''})`, undefined, why));
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
    const ws = newSocket(url, options);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        void refusal(res).then(({ status, message }) => {
          const why: RetryCause = { kind: 'refused', status, message };
          reject(new SwitchboardClientError(causeCode(why), describeCause(why), status, why));
          // After rejecting: terminating emits an 'error' of its own.
          ws.terminate();
        });
      });
      ws.once('error', reject);
    });
    return new SwitchboardClient(ws, options.timeoutMs, options.keepOutput);
  }

  send(frame: ClientFrame): void {
    this.core.send(frame);
  }

  /**
   * Sends a request with a fresh `ref` and resolves with the reply carrying that ref;
   * an `error` reply rejects with a SwitchboardClientError carrying its `code`.
   */
  request<F extends RequestFrame>(frame: F, timeoutMs = this.timeoutMs): Promise<ReplyTo<F>> {
    return this.core.request(frame, timeoutMs);
  }

  /** The output tracking of `sid` (created empty on first use). */
  sessionOutput(sid: string): SessionOutput {
    return this.core.session(sid);
  }

  /** Stops tracking `sid` (a long-lived client watching many sessions). */
  forget(sid: string): void {
    this.core.forget(sid);
  }

  /** Tells the server we consumed `sid`'s output up to `off` (default: all received). */
  ack(sid: string, off?: number): void {
    this.core.ack(sid, off);
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
}

/** How long a graceful close may take before the socket is dropped. */
const CLOSE_GRACE_MS = 1_000;

function newSocket(url: string, options: ConnectOptions): WebSocket {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return new WebSocket(wsUrl(url), options.protocols ?? [SUBPROTOCOL], {
    headers,
    ...(options.origin ? { origin: options.origin } : {}),
    handshakeTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}

/** The status and message of a refused upgrade (the server's JSON `message` when there is one). */
function refusal(res: IncomingMessage): Promise<{ status: number; message: string }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('error', () => resolve({ status: res.statusCode ?? 0, message: '' }));
    res.on('end', () => {
      let message = Buffer.concat(parts).toString('utf8').trim();
      try {
        const body = JSON.parse(message) as { message?: string };
        if (body.message) message = body.message;
      } catch {
        // not JSON: keep the text
      }
      resolve({ status: res.statusCode ?? 0, message });
    });
  });
}

/** Why a socket never came up, in words a CLI user can act on. */
export function describeNetError(err: unknown, url: string): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') return `cannot reach ${url}: connection refused (is the server running? --url)`;
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') return `cannot reach ${url}: unknown host (--url)`;
  return `cannot reach ${url}: ${e instanceof Error ? e.message : String(err)}`;
}

/** Sockets for SessionLink: one `ws` connection per call, its end reported once. */
export function wsDial(url: string, options: ConnectOptions = {}): Dial {
  return (handlers) => {
    const ws = newSocket(url, options);
    let opened = false;
    let ended = false;
    const end = (why: RetryCause): void => {
      if (ended) return;
      ended = true;
      handlers.closed(why);
    };
    ws.on('open', () => {
      opened = true;
      handlers.open();
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) handlers.message(data);
    });
    ws.on('unexpected-response', (_req, res) => {
      void refusal(res).then(({ status, message }) => {
        end({ kind: 'refused', status, message });
        ws.terminate();
      });
    });
    // After `open`, an error is followed by `close` (1006), which reports it.
    ws.on('error', (err) => {
      if (!opened) end({ kind: 'unreachable', message: describeNetError(err, url) });
    });
    ws.on('close', (code, reason) => end({ kind: 'close', code, reason: reason.toString() }));
    return {
      send: (bytes) => ws.send(bytes),
      close: () => {
        if (ws.readyState === WebSocket.CLOSED) return;
        ws.close();
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      },
    };
  };
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
