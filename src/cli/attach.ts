/**
 * `switchboard attach [sid]`: this terminal becomes a writer on a session, like
 * `tmux attach`. Without a sid it opens a new pty session (and prints its id on the
 * way out).
 *
 *   stdin (raw) ──in──▶ session        session ──out──▶ stdout ──ack (once written)──▶
 *
 * The protocol side is SessionLink (src/client/link.ts): a dropped socket, a draining
 * node's `bye` or a temporary refusal reconnects under the one retry rule and
 * re-attaches with `from: <next offset>`, so nothing is lost or repeated; a permanent
 * refusal ends with the server's message. The detach key (Ctrl-\ by default) leaves the
 * session running; when the session exits we print its code and exit with it.
 */
import { parseArgs } from 'node:util';
import { wsDial } from '../client/client.js';
import { SessionLink, type LinkEnd } from '../client/link.js';

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

/** One terminal bridged to one session: stdin → input, output → stdout → acks. */
class Bridge {
  private readonly link: SessionLink;
  private rawMode = false;
  private lostShown = false;
  private finish!: (code: number, message?: string) => void;
  private readonly finished: Promise<{ code: number; message?: string }>;
  private readonly stdin = process.stdin;
  private readonly stdout = process.stdout;

  constructor(url: string, token: string | undefined, sid: string | undefined, private readonly detachByte: number | undefined) {
    let settled = false;
    this.finished = new Promise((resolve) => {
      this.finish = (code, message) => {
        if (settled) return;
        settled = true;
        resolve({ code, message });
      };
    });
    this.link = new SessionLink({
      dial: wsDial(url, { token }),
      sid,
      open: () => ({ kind: 'pty', ...this.size() }),
      size: () => this.size(),
      // A first connection that cannot reach the server is a wrong --url, not an outage.
      retryFirstDial: false,
      events: {
        output: (data, end, snap) => {
          // A screen snapshot assumes a blank screen.
          if (snap) this.stdout.write('\x1b[H\x1b[2J');
          this.stdout.write(data, () => this.link.consumed(end));
        },
        live: ({ resumed }) => {
          if (resumed && this.lostShown) this.notice('reconnected');
          this.lostShown = false;
        },
        waiting: ({ delayMs, why }) => {
          if (this.lostShown) return;
          this.lostShown = true;
          this.notice(`${why}; reconnecting to ${this.link.sid} in ${(delayMs / 1000).toFixed(1)} s`);
        },
        gap: (from, to) => this.notice(`${to - from} bytes of output could not be replayed`),
        notice: (text) => this.notice(text),
        ended: (end) => this.ended(end),
      },
    });
  }

  async run(): Promise<number> {
    // Raw mode first, so keys typed while connecting are neither echoed nor lost, and
    // the detach key works even then.
    this.startTerminal();
    this.link.start();
    const { code, message } = await this.finished;
    this.cleanup();
    if (message) process.stderr.write(`${message}\n`);
    return code;
  }

  private size(): { cols: number; rows: number } {
    return { cols: this.stdout.columns || 80, rows: this.stdout.rows || 24 };
  }

  private ended(end: LinkEnd): void {
    if ('failure' in end) {
      this.finish(1, `${this.lostShown || this.link.connects > 1 ? '\r\n' : ''}switchboard attach: ${end.failure.message}`);
      return;
    }
    const { exit } = end;
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const code = typeof exit.code === 'number' ? exit.code : 1;
    // Let the last output reach the terminal before the message.
    this.stdout.write('', () => this.finish(code, `\r\n[session ${this.link.sid} exited with ${how}${exit.reason ? `: ${exit.reason}` : ''}]`));
  }

  // ─── the local terminal ────────────────────────────────────────────────────

  private readonly onInput = (chunk: Buffer): void => {
    if (this.link.phase === 'done') return;
    const at = this.detachByte === undefined ? -1 : chunk.indexOf(this.detachByte);
    if (at >= 0) {
      if (at > 0) this.link.input(chunk.subarray(0, at));
      this.link.detach();
      this.finish(0, `\r\n[detached from session ${this.link.established ? this.link.sid : '(none)'}]`);
      return;
    }
    this.link.input(chunk);
  };

  private readonly onResize = (): void => {
    const { cols, rows } = this.size();
    this.link.resize(cols, rows);
  };

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.link.stop();
    this.finish(signal === 'SIGHUP' ? 129 : 143, `\r\n[switchboard: ${signal}, detached from session ${this.link.sid}]`);
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

  private notice(text: string): void {
    process.stderr.write(`\r\n[switchboard: ${text}]\r\n`);
  }

  private cleanup(): void {
    this.link.stop();
    this.stdin.off('data', this.onInput);
    this.stdout.off('resize', this.onResize);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGHUP', this.onSignal);
    if (this.rawMode) this.stdin.setRawMode(false);
    this.stdin.pause();
  }
}
