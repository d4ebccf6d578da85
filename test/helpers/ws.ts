/**
 * A protocol-level test client: raw frames in and out, and `next(predicate)` to await a
 * frame rather than sleep.
 */
import WebSocket from 'ws';
import { decodeMessage, encodeValue } from '../../src/protocol/codec.js';
import { TEST_TOKEN } from './node.js';

export type Frame = Record<string, any>;

export class TestClient {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  private ref = 1;
  private hooks: Array<{ pred: (f: Frame) => boolean; fn: (f: Frame) => void }> = [];
  closed: Promise<{ code: number; reason: string }>;
  /** Bytes of `out` frames per session, in order, as received (snapshots excluded). */
  readonly output = new Map<string, Buffer[]>();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const f = isBinary ? (decodeMessage(data) as Frame) : { t: '__text', text: data.toString() };
      this.frames.push(f);
      if (f.t === 'out' && !f.snap) {
        const list = this.output.get(f.sid) ?? [];
        list.push(Buffer.from(f.data));
        this.output.set(f.sid, list);
      }
      for (const h of [...this.hooks]) {
        if (h.pred(f)) {
          this.hooks.splice(this.hooks.indexOf(h), 1);
          h.fn(f);
        }
      }
      for (const w of [...this.waiters]) {
        if (w.pred(f)) {
          clearTimeout(w.timer);
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      for (const w of this.waiters) {
        clearTimeout(w.timer);
        w.reject(new Error(`socket closed ${code} while waiting`));
      }
      this.waiters = [];
      resolve({ code, reason: reason.toString() });
    }));
  }

  static async connect(url: string, options: { token?: string | null; headers?: Record<string, string>; protocols?: string[] } = {}): Promise<TestClient> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? TEST_TOKEN : options.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const ws = new WebSocket(url, options.protocols ?? ['switchboard.v1'], { headers });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
    return new TestClient(ws);
  }

  send(frame: Frame): void {
    this.ws.send(encodeValue(frame));
  }

  /**
   * Runs `fn` inside the message handler of the first frame matching `pred`, before any
   * later frame is looked at: to act "upon receipt", with no promise turn in between.
   */
  upon(pred: (f: Frame) => boolean, fn: (f: Frame) => void): void {
    this.hooks.push({ pred, fn });
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  /** Waits for a frame matching `pred` that arrives from now on, or one already seen after `since`. */
  next(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== resolve);
        reject(new Error(`timed out waiting for a frame; last frames: ${JSON.stringify(this.frames.slice(-5).map((f) => ({ ...f, data: f.data ? `<${f.data.length} bytes>` : undefined })))}`));
      }, timeoutMs);
      this.waiters.push({ pred, resolve, reject, timer });
    });
  }

  /** A frame matching `pred` already received, or the next one to arrive. */
  seen(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const found = this.frames.find(pred);
    return found ? Promise.resolve(found) : this.next(pred, timeoutMs);
  }

  async request(frame: Frame, timeoutMs = 10_000): Promise<Frame> {
    const ref = this.ref++;
    const reply = this.next((f) => f.ref === ref, timeoutMs);
    this.send({ ...frame, ref });
    const f = await reply;
    if (f.t === 'error') throw Object.assign(new Error(`${f.code}: ${f.msg}`), { code: f.code });
    return f;
  }

  text(sid: string): string {
    return Buffer.concat(this.output.get(sid) ?? []).toString('utf8');
  }

  bytes(sid: string): Buffer {
    return Buffer.concat(this.output.get(sid) ?? []);
  }

  /** Waits until the session's received output contains `needle`. */
  async waitForOutput(sid: string, needle: string | RegExp, timeoutMs = 10_000): Promise<string> {
    const has = (): boolean => (typeof needle === 'string' ? this.text(sid).includes(needle) : needle.test(this.text(sid)));
    if (!has()) await this.next((f) => f.t === 'out' && f.sid === sid && has(), timeoutMs);
    return this.text(sid);
  }

  /** Waits until `n` bytes of the session's output arrived. */
  async waitForBytes(sid: string, n: number, timeoutMs = 10_000): Promise<Buffer> {
    if (this.bytes(sid).length < n) await this.next((f) => f.t === 'out' && f.sid === sid && this.bytes(sid).length >= n, timeoutMs);
    return this.bytes(sid);
  }

  close(): void {
    this.ws.close();
  }
}

/** A request's error code, or undefined when it succeeded. */
export async function refusal(c: TestClient, frame: Frame): Promise<string | undefined> {
  try {
    await c.request(frame);
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}
