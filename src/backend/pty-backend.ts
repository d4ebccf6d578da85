import { existsSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import * as pty from 'node-pty';
import { SwitchboardError } from '../errors/errors.js';
import type { OpenSpec } from '../protocol/frames.js';
import type { Backend, BackendExit } from './backend.js';
import { sessionEnvironment } from './env.js';

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export function defaultShell(): string {
  const shell = process.env.SHELL;
  if (shell && existsSync(shell)) return shell;
  return existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh';
}

/** A real terminal: node-pty with bytes (not strings) both ways. */
export class PtyBackend implements Backend {
  private readonly proc: pty.IPty;
  private exited = false;
  private exitListener: ((exit: BackendExit) => void) | undefined;
  private pendingExit: BackendExit | undefined;

  constructor(spec: OpenSpec) {
    const cwd = spec.cwd ?? process.env.HOME ?? process.cwd();
    if (!existsSync(cwd) || !statSync(cwd).isDirectory()) {
      throw new SwitchboardError('bad_frame', `cwd '${cwd}' is not a directory on this node`);
    }
    const file = spec.cmd ?? defaultShell();
    try {
      this.proc = pty.spawn(file, spec.args ?? [], {
        name: 'xterm-256color',
        cols: spec.cols,
        rows: spec.rows,
        cwd,
        env: sessionEnvironment(spec.env, { TERM: 'xterm-256color', COLORTERM: 'truecolor' }),
        // null: hand us Buffers, so multi-byte characters split across reads stay intact.
        encoding: null,
      } as pty.IPtyForkOptions);
    } catch (err) {
      throw new SwitchboardError('bad_frame', `cannot start '${file}': ${(err as Error).message}`);
    }
    this.proc.onExit(({ exitCode, signal }) => {
      this.exited = true;
      // Input the program never read goes nowhere now: free it (node-pty would retry it
      // against the closed descriptor).
      const queue = this.writeQueue();
      if (queue) queue.length = 0;
      const exit: BackendExit = { code: exitCode };
      if (signal) exit.signal = SIGNAL_NAMES.get(signal) ?? String(signal);
      if (this.exitListener) this.exitListener(exit);
      else this.pendingExit = exit;
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  write(data: Uint8Array): void {
    if (this.exited) return;
    // node-pty's typings say string, but it writes Buffers as bytes.
    this.proc.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength) as unknown as string);
  }

  /**
   * Bytes node-pty holds for the PTY: it queues every write and hands the queue to the
   * kernel as the program reads, so a program that never reads makes it grow without
   * bound. node-pty has no public call for its size; this reads its write queue
   * (`_writeStream._writeQueue`, node-pty 1.x on Unix) and answers 0 if the shape is
   * not there (test/bounds.test.ts fails then, rather than the bound silently lapsing).
   */
  inputQueued(): number {
    const queue = this.writeQueue();
    if (!queue) return 0;
    let n = 0;
    for (const task of queue) n += task.buffer.byteLength - task.offset;
    return n;
  }

  private writeQueue(): Array<{ buffer: Uint8Array; offset: number }> | undefined {
    const queue = (this.proc as unknown as { _writeStream?: { _writeQueue?: unknown } })._writeStream?._writeQueue;
    return Array.isArray(queue) ? queue : undefined;
  }

  resize(cols: number, rows: number): void {
    if (this.exited) return;
    try {
      this.proc.resize(cols, rows);
    } catch {
      // The process may have exited between our check and the ioctl.
    }
  }

  pause(): void {
    if (!this.exited) this.proc.pause();
  }

  resume(): void {
    if (!this.exited) this.proc.resume();
  }

  kill(signal: string): void {
    if (this.exited) return;
    // The shell leads its own process group: signal the group so its children go too.
    try {
      process.kill(-this.proc.pid, signal as NodeJS.Signals);
    } catch {
      // Group already gone.
    }
    try {
      this.proc.kill(signal);
    } catch {
      // Already exited.
    }
  }

  onData(listener: (data: Uint8Array) => void): void {
    this.proc.onData((data) => listener(data as unknown as Buffer));
  }

  onExit(listener: (exit: BackendExit) => void): void {
    this.exitListener = listener;
    if (this.pendingExit) listener(this.pendingExit);
  }
}
