/**
 * Backend: the thing a session runs (a PTY, an agent process, the in-process echo).
 *
 * State: starting → running ⇄ paused → exited. `write`, `resize`, `pause` and `resume`
 * after exit are ignored. `onExit` fires exactly once, after the last `onData`.
 *
 * A backend whose process lives outside the node (a PTY held by the keeper,
 * src/keeper/) has the optional abilities below; in-process backends have none of them.
 * Its state adds: running → handed off (the process runs on, unattached) | taken (another
 * owner attached it) | discarded.
 */
import type { OpenSpec } from '../protocol/frames.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';

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

  /** Resolves once the process runs (or is reattached); rejects with why it cannot. */
  readonly ready?: Promise<void>;
  /** Bytes of our own (a notice) into the output, numbered in order with the process's. */
  note?(data: Uint8Array): void;
  /** The log holds the output below `end`: a holder outside the node may drop it. */
  confirmed?(end: Offset): void;
  /** Another owner (a higher epoch) attached the process: stop, record nothing. */
  onTaken?(listener: (reason: string) => void): void;
  /** Fenced: end the process and forget it; its exit is not wanted. */
  discard?(): void;
  /** The exit is recorded: whoever holds the ended process may forget it. */
  release?(): void;
  /** Let go without ending it (drain): the process runs on for the next owner. */
  handOff?(): Promise<void>;
}

export interface BackendContext {
  sid: SessionId;
  /** The owner epoch the session runs at, and the offset its first output byte gets. */
  epoch: Epoch;
  head: Offset;
  /** Who opened the session, and when (a keeper keeps them to recreate its record). */
  owner: string;
  createdAt: number;
  /** Answers an agent's `limit` request from the cluster-wide limiter. */
  checkLimit(key: string): Promise<{ ok: boolean; retryMs: number }>;
}

export interface BackendFactory {
  create(spec: OpenSpec, context: BackendContext): Backend;
}
