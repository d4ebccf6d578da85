/**
 * Backend: the thing a session runs (a PTY, an agent process, the in-process echo).
 *
 * State: starting → running ⇄ paused → exited. `write`, `resize`, `pause` and `resume`
 * after exit are ignored. `onExit` fires exactly once, after the last `onData`.
 */
import type { OpenSpec } from '../protocol/frames.js';
import type { SessionId } from '../util/ids.js';

export interface BackendExit {
  code: number;
  signal?: string;
  reason?: string;
}

export interface Backend {
  readonly pid: number | undefined;
  write(data: Uint8Array): void;
  /**
   * Input handed to `write` that the program has not read yet and that waits in this
   * process (not the kernel's buffer). Absent: the backend holds none.
   */
  inputQueued?(): number;
  resize(cols: number, rows: number): void;
  /** Stop reading output (flow control); the producer blocks on its full pipe. */
  pause(): void;
  resume(): void;
  kill(signal: string): void;
  onData(listener: (data: Uint8Array) => void): void;
  onExit(listener: (exit: BackendExit) => void): void;
}

export interface BackendContext {
  sid: SessionId;
  /** Answers an agent's `limit` request from the cluster-wide limiter. */
  checkLimit(key: string): Promise<{ ok: boolean; retryMs: number }>;
}

export interface BackendFactory {
  create(spec: OpenSpec, context: BackendContext): Backend;
}
