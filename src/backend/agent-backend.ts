import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants } from 'node:os';
import { existsSync } from 'node:fs';
import { SwitchboardError } from '../errors/errors.js';
import type { OpenSpec } from '../protocol/frames.js';
import type { Backend, BackendContext, BackendExit } from './backend.js';
import { sessionEnvironment } from './env.js';

const MAX_LINE = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * An agent process speaking newline-delimited JSON: each `in` is one line on stdin,
 * each stdout line is one `out`. `{"type":"limit","key":K,"id":I}` lines are answered
 * from the cluster-wide limiter instead of being forwarded.
 */
export class AgentBackend implements Backend {
  private readonly child: ChildProcessWithoutNullStreams;
  private dataListener: ((data: Uint8Array) => void) | undefined;
  private exitListener: ((exit: BackendExit) => void) | undefined;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private exited = false;

  constructor(spec: OpenSpec, private readonly context: BackendContext) {
    const cwd = spec.cwd ?? process.cwd();
    if (!existsSync(cwd)) throw new SwitchboardError('bad_frame', `cwd '${cwd}' does not exist on this node`);
    this.child = spawn(spec.cmd!, spec.args ?? [], { cwd, env: sessionEnvironment(spec.env), stdio: 'pipe', detached: true });
    this.child.on('error', (err) => this.finish({ code: 127, reason: `cannot start '${spec.cmd}': ${err.message}` }));
    this.child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk));
    this.child.stderr.resume(); // never let a chatty stderr block the child
    this.child.on('close', (code, signal) => {
      this.flushPartial();
      const exit: BackendExit = { code: code ?? 128 + (signal ? constants.signals[signal] : 0) };
      if (signal) exit.signal = signal;
      this.finish(exit);
    });
    this.child.stdin.on('error', () => {}); // EPIPE after the child closed stdin
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private finish(exit: BackendExit): void {
    if (this.exited) return;
    this.exited = true;
    this.exitListener?.(exit);
  }

  private onStdout(chunk: Buffer): void {
    let start = 0;
    for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, start)) {
      this.partial.push(chunk.subarray(start, i + 1));
      start = i + 1;
      this.emitLine(Buffer.concat(this.partial));
      this.partial = [];
      this.partialBytes = 0;
    }
    if (start < chunk.length) {
      this.partial.push(chunk.subarray(start));
      this.partialBytes += chunk.length - start;
      // A line that never ends must not grow without bound: pass it on in pieces.
      if (this.partialBytes > MAX_LINE) this.flushPartial();
    }
  }

  private flushPartial(): void {
    if (this.partial.length === 0) return;
    const rest = Buffer.concat(this.partial);
    this.partial = [];
    this.partialBytes = 0;
    this.dataListener?.(rest);
  }

  private emitLine(line: Buffer): void {
    if (line.includes('"limit"')) {
      const request = parseLimitRequest(line);
      if (request) {
        void this.answerLimit(request);
        return;
      }
    }
    this.dataListener?.(line);
  }

  private async answerLimit(request: { key: string; id: unknown }): Promise<void> {
    const decision = await this.context.checkLimit(request.key).catch(() => ({ ok: false, retryMs: 1000 }));
    this.writeLine(JSON.stringify({ type: 'limit', id: request.id, ok: decision.ok, retryMs: decision.retryMs }));
  }

  private writeLine(text: string): void {
    if (!this.exited) this.child.stdin.write(text + '\n');
  }

  write(data: Uint8Array): void {
    if (this.exited) return;
    this.child.stdin.write(data);
    if (data[data.length - 1] !== NEWLINE) this.child.stdin.write('\n');
  }

  resize(): void {}

  pause(): void {
    this.child.stdout.pause();
  }

  resume(): void {
    this.child.stdout.resume();
  }

  kill(signal: string): void {
    if (this.exited || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal as NodeJS.Signals);
    } catch {
      this.child.kill(signal as NodeJS.Signals);
    }
  }

  onData(listener: (data: Uint8Array) => void): void {
    this.dataListener = listener;
  }

  onExit(listener: (exit: BackendExit) => void): void {
    this.exitListener = listener;
  }
}

function parseLimitRequest(line: Buffer): { key: string; id: unknown } | undefined {
  try {
    const msg = JSON.parse(line.toString('utf8')) as { type?: unknown; key?: unknown; id?: unknown };
    if (msg.type === 'limit' && typeof msg.key === 'string') return { key: msg.key, id: msg.id };
  } catch {
    // Not JSON: an ordinary output line.
  }
  return undefined;
}
