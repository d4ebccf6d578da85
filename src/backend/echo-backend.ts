import type { Backend, BackendExit } from './backend.js';

/**
 * In-process backend that answers every input with the same bytes: the bench's and the
 * tests' session kind. It needs no process, so 10K+ sessions cost only memory.
 */
export class EchoBackend implements Backend {
  readonly pid = undefined;
  private dataListener: ((data: Uint8Array) => void) | undefined;
  private exitListener: ((exit: BackendExit) => void) | undefined;
  private paused = false;
  private held: Uint8Array[] = [];
  private exited = false;

  write(data: Uint8Array): void {
    if (this.exited) return;
    // Copy: the caller's buffer may be reused (uWS frees it after the handler returns).
    const copy = Uint8Array.from(data);
    if (this.paused) this.held.push(copy);
    else this.dataListener?.(copy);
  }

  resize(): void {}

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const d of held) this.dataListener?.(d);
  }

  kill(signal: string): void {
    if (this.exited) return;
    this.exited = true;
    this.held = [];
    queueMicrotask(() => this.exitListener?.({ code: 0, signal }));
  }

  onData(listener: (data: Uint8Array) => void): void {
    this.dataListener = listener;
  }

  onExit(listener: (exit: BackendExit) => void): void {
    this.exitListener = listener;
  }
}
