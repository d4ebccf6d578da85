/**
 * `switchboard attach [sid]`: this terminal becomes a writer on a session, like
 * `tmux attach`. Without a sid it opens a new pty session (and prints its id on the
 * way out).
 *
 *   stdin (raw) ──in──▶ session        session ──out──▶ stdout ──ack (once written)──▶
 *
 * A dropped socket reconnects with backoff and re-attaches with `from: <next offset>`,
 * so nothing is lost or repeated; the detach key (Ctrl-\ by default) leaves the session
 * running; when the session exits we print its code and exit with it.
 */
import { parseArgs } from 'node:util';
import { SessionOutput, SwitchboardClient, SwitchboardClientError, type ServerFrame } from '../client/client.js';

export const DEFAULT_URL = 'http://127.0.0.1:7070';

export const ATTACH_HELP = `Usage: switchboard attach [sid] [options]

Attach this terminal to a session as a writer (a new pty session when no sid is given).
Detach with Ctrl-\\ (the session keeps running); when the session ends, its exit code
becomes ours.

Options:
  --url URL          the server (default ${DEFAULT_URL}); a ws:// URL works too
  --token TOKEN      credentials (default $SWITCHBOARD_TOKEN)
  --detach-key KEY   C-x or ^x for Ctrl-x, a single character, or "none" (default C-\\)
  -h, --help         this text
`;

export interface AttachArgs {
  url?: string;
  token?: string;
  /** The session to attach to; a new pty session when absent. */
  sid?: string;
  /** `C-\` (default), `^\`, `ctrl-a`, a single character, or `none`. */
  detachKey?: string;
}

const ACK_BYTES = 64 * 1024;
const ACK_DELAY_MS = 50;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const MAX_QUEUED_INPUT = 64 * 1024;
/** Errors on attach that no retry fixes. */
const FATAL_CODES = new Set(['unauthorized', 'forbidden', 'not_found', 'bad_frame']);

/** Parses `[sid] --url --token --detach-key`; throws on unknown options. */
export function parseAttachArgs(argv: string[]): AttachArgs & { help: boolean } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      'detach-key': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (positionals.length > 1) throw new Error(`attach takes at most one session id, got ${positionals.length}`);
  return {
    url: values.url,
    token: values.token,
    sid: positionals[0],
    detachKey: values['detach-key'],
    help: values.help === true,
  };
}

/** `C-\`, `^\`, `ctrl-\`, `ctrl+a` → the control byte; one character → its byte; `none` → undefined. */
export function parseDetachKey(key: string): number | undefined {
  const k = key.trim();
  if (k === '' || k.toLowerCase() === 'none') return undefined;
  const m = /^(?:c-|\^|ctrl[-+])(.)$/i.exec(k);
  if (m) {
    const c = m[1]!;
    if (c === '?') return 0x7f;
    const code = c.toUpperCase().charCodeAt(0);
    if (code < 0x40 || code > 0x5f) throw new Error(`--detach-key: no control character for '${c}' (use C-a … C-z, C-[ C-\\ C-] C-^ C-_)`);
    return code & 0x1f;
  }
  const bytes = Buffer.from(k, 'utf8');
  if (bytes.length !== 1) throw new Error(`--detach-key: '${key}' is not one key (try C-\\ or C-a)`);
  return bytes[0];
}

/** For the command dispatcher that passes raw argv. */
export async function run(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseAttachArgs>;
  try {
    args = parseAttachArgs(argv);
  } catch (err) {
    process.stderr.write(`switchboard attach: ${(err as Error).message}\n\n${ATTACH_HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(ATTACH_HELP);
    return 0;
  }
  return attach(args);
}

/** Runs until detach or the session's exit; resolves with (and sets) the exit code. */
export async function attach(args: AttachArgs): Promise<number> {
  let detachByte: number | undefined;
  try {
    detachByte = parseDetachKey(args.detachKey ?? 'C-\\');
  } catch (err) {
    process.stderr.write(`switchboard attach: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return 2;
  }
  const bridge = new Bridge(args.url ?? DEFAULT_URL, args.token ?? process.env.SWITCHBOARD_TOKEN, args.sid, detachByte);
  const code = await bridge.run();
  process.exitCode = code;
  return code;
}

type BridgeState = 'connecting' | 'live' | 'reconnecting' | 'done';

/** One terminal bridged to one session across any number of sockets. */
class Bridge {
  private state: BridgeState = 'connecting';
  private client: SwitchboardClient | undefined;
  /** Offsets of the session's output, across sockets (no bytes kept). */
  private readonly track = new SessionOutput(false);
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private byeRetryMs: number | undefined;
  private noticeShown = false;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private consumed: number | undefined;
  private acked: number | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private rawMode = false;
  private finish!: (code: number, message?: string) => void;
  private readonly finished: Promise<{ code: number; message?: string }>;
  private readonly stdin = process.stdin;
  private readonly stdout = process.stdout;

  constructor(
    private readonly url: string,
    private readonly token: string | undefined,
    private sid: string | undefined,
    private readonly detachByte: number | undefined,
  ) {
    this.finished = new Promise((resolve) => {
      this.finish = (code, message) => {
        if (this.state === 'done') return;
        this.state = 'done';
        resolve({ code, message });
      };
    });
  }

  async run(): Promise<number> {
    // Raw mode first, so keys typed while connecting are neither echoed nor lost, and
    // the detach key works even then.
    this.startTerminal();
    this.connect().catch((err: unknown) => this.finish(1, `switchboard attach: ${describe(err, this.url)}`));
    const { code, message } = await this.finished;
    await this.cleanup();
    if (message) process.stderr.write(`${message}\n`);
    return code;
  }

  private size(): { cols: number; rows: number } {
    return { cols: this.stdout.columns || 80, rows: this.stdout.rows || 24 };
  }

  /** Connects and opens or attaches; resolves once output flows. */
  private async connect(): Promise<void> {
    const client = await SwitchboardClient.connect(this.url, { token: this.token, keepOutput: false });
    if (this.done) {
      client.terminate();
      return;
    }
    this.client = client;
    // Listen before the request: output can arrive in the same read as the reply.
    client.on('frame', (f) => {
      if (this.client === client) this.onFrame(f);
    });
    client.on('close', () => {
      if (this.client === client) this.onClose();
    });
    if (this.sid === undefined) {
      const opened = await client.request({ t: 'open', kind: 'pty', ...this.size() });
      this.sid ??= opened.sid;
    } else {
      const from = this.track.next;
      const attached = await client.request({ t: 'attach', sid: this.sid, role: 'writer', ...(from === undefined ? {} : { from }) });
      const { cols, rows } = this.size();
      if (attached.cols !== cols || attached.rows !== rows) client.send({ t: 'resize', sid: this.sid, cols, rows });
    }
    if (this.done) {
      // Detached while this reconnect was in flight.
      client.terminate();
      return;
    }
    this.state = 'live';
    this.attempt = 0;
    this.acked = undefined;
    if (this.noticeShown) {
      this.noticeShown = false;
      this.notice('reconnected');
    }
    for (const data of this.queued) client.send({ t: 'in', sid: this.sid!, data });
    this.queued = [];
    this.queuedBytes = 0;
    this.flushAck();
  }

  private onFrame(f: ServerFrame): void {
    switch (f.t) {
      case 'opened':
        // Set here, not after `await request`: the first `out` may be in the same read.
        this.sid ??= f.sid;
        this.track.next ??= 0;
        return;
      case 'out': {
        if (f.sid !== this.sid) return;
        if (f.snap) {
          this.track.push(f.off, f.data, true);
          // A screen snapshot assumes a blank screen.
          this.stdout.write('\x1b[H\x1b[2J');
          this.write(f.data, f.off);
          return;
        }
        const bytes = this.track.push(f.off, f.data, false);
        if (bytes.length > 0) this.write(bytes, this.track.next!);
        return;
      }
      case 'gap':
        if (f.sid !== this.sid) return;
        this.track.gap(f.from, f.to);
        this.notice(`${f.to - f.from} bytes of output could not be replayed`);
        return;
      case 'exit': {
        if (f.sid !== this.sid) return;
        const how = f.signal ? `signal ${f.signal}` : `code ${f.code}`;
        const code = typeof f.code === 'number' ? f.code : 1;
        // Let the last output reach the terminal before the message.
        this.stdout.write('', () => this.finish(code, `\r\n[session ${this.sid} exited with ${how}]`));
        return;
      }
      case 'error':
        if (f.ref === undefined) this.notice(`${f.code}: ${f.msg}`);
        if (f.ref === undefined && f.sid === this.sid && f.code === 'unavailable') this.client?.terminate();
        return;
      case 'bye':
        this.byeRetryMs = f.retryMs;
        this.client?.close();
        return;
      default:
        return;
    }
  }

  private onClose(): void {
    // Before `live`, the pending request rejects and connect()'s caller retries or reports.
    if (this.state !== 'live') return;
    this.state = 'reconnecting';
    this.client = undefined;
    const delay = this.byeRetryMs ?? this.backoff();
    this.byeRetryMs = undefined;
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
  }

  /** A getter, so TypeScript does not narrow `state` across awaits. */
  private get done(): boolean {
    return this.state === 'done';
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.state === 'done') return;
    try {
      await this.connect();
    } catch (err) {
      if (this.done) return;
      const stale = this.client;
      this.client = undefined;
      stale?.terminate();
      if (err instanceof SwitchboardClientError && FATAL_CODES.has(err.code)) {
        this.finish(1, `\r\n[switchboard: ${err.message}]`);
        return;
      }
      if (!this.noticeShown) {
        this.noticeShown = true;
        this.notice(`connection lost (${describe(err, this.url)}); reconnecting to ${this.sid}`);
      }
      this.reconnectTimer = setTimeout(() => void this.reconnect(), this.backoff());
    }
  }

  private backoff(): number {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt++;
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  // ─── the local terminal ────────────────────────────────────────────────────

  private readonly onInput = (chunk: Buffer): void => {
    if (this.state === 'done') return;
    const at = this.detachByte === undefined ? -1 : chunk.indexOf(this.detachByte);
    if (at >= 0) {
      if (at > 0) this.sendInput(chunk.subarray(0, at));
      if (this.state === 'live' && this.sid) this.client?.send({ t: 'detach', sid: this.sid });
      this.finish(0, `\r\n[detached from session ${this.sid ?? '(none)'}]`);
      return;
    }
    this.sendInput(chunk);
  };

  private readonly onResize = (): void => {
    if (this.state === 'live' && this.sid) this.client?.send({ t: 'resize', sid: this.sid, ...this.size() });
  };

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.finish(signal === 'SIGHUP' ? 129 : 143, `\r\n[switchboard: ${signal}, detached from session ${this.sid}]`);
  };

  private startTerminal(): void {
    if (this.stdin.isTTY) {
      this.stdin.setRawMode(true);
      this.rawMode = true;
    }
    this.stdin.on('data', this.onInput);
    this.stdin.resume();
    this.stdout.on('resize', this.onResize);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGHUP', this.onSignal);
    // stdin ended (a pipe): keep bridging output until the session ends or we detach.
  }

  private sendInput(data: Buffer): void {
    if (this.state === 'live' && this.sid && this.client) {
      this.client.send({ t: 'in', sid: this.sid, data });
      return;
    }
    if (this.queuedBytes + data.length > MAX_QUEUED_INPUT) return;
    this.queued.push(Buffer.from(data));
    this.queuedBytes += data.length;
  }

  private write(data: Uint8Array, end: number): void {
    this.stdout.write(data, () => this.consumedUpTo(end));
  }

  private notice(text: string): void {
    process.stderr.write(`\r\n[switchboard: ${text}]\r\n`);
  }

  // ─── flow control: ack what reached the terminal ────────────────────────────

  private consumedUpTo(end: number): void {
    if (this.consumed === undefined || end > this.consumed) this.consumed = end;
    if (this.acked === undefined || this.consumed - this.acked >= ACK_BYTES) this.flushAck();
    else this.ackTimer ??= setTimeout(() => this.flushAck(), ACK_DELAY_MS);
  }

  private flushAck(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (this.state !== 'live' || !this.sid || !this.client || this.consumed === undefined || this.consumed === this.acked) return;
    this.client.send({ t: 'ack', sid: this.sid, off: this.consumed });
    this.acked = this.consumed;
  }

  private async cleanup(): Promise<void> {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.stdin.off('data', this.onInput);
    this.stdout.off('resize', this.onResize);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGHUP', this.onSignal);
    if (this.rawMode) this.stdin.setRawMode(false);
    this.stdin.pause();
    const client = this.client;
    this.client = undefined;
    if (client && !client.isClosed) {
      const timer = setTimeout(() => client.terminate(), 1000);
      await client.close();
      clearTimeout(timer);
    }
  }
}

function describe(err: unknown, url: string): string {
  if (err instanceof SwitchboardClientError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') return `cannot reach ${url}: connection refused (is the server running? --url)`;
  return e instanceof Error ? e.message : String(err);
}
