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
