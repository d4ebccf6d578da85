/**
 * Messages between the bench (parent, bench/pool.ts) and a load generator worker
 * (bench/loadgen-worker.ts, a child process with an IPC channel). Both import these
 * types from here.
 *
 *   parent ──connect──▶ worker ──connected──▶ parent
 *   parent ──measure──▶ worker ──progress…, result──▶ parent
 *   parent ──close──▶ worker exits
 */

export type Transport = 'ws' | 'sio';

export interface ConnSpec {
  url: string;
  /** open: a new session (opener is writer); attach: an existing sid; none: idle socket. */
  action: 'open' | 'attach' | 'none';
  kind?: 'echo' | 'pty';
  cmd?: string;
  args?: string[];
  sid?: string;
  role?: 'writer' | 'viewer';
  from?: number;
  /** Writers type during `measure`; others only read. */
  writes: boolean;
  /** A slow reader: its socket is paused after attaching, so output piles up server-side. */
  slow?: boolean;
  /** Flood writer: sends `floodBytes`-sized inputs closed-loop instead of keystrokes. */
  flood?: boolean;
}

export interface ConnectMsg {
  type: 'connect';
  token: string;
  transport: Transport;
  conns: ConnSpec[];
  /** Connection attempts in flight at once. */
  concurrency: number;
  /** Epoch ms at which to start connecting (so several workers start together). */
  startAt: number;
}

export interface MeasureMsg {
  type: 'measure';
  /** Epoch ms of the schedule's origin; keystrokes before t0 + warmupMs are not recorded. */
  t0: number;
  warmupMs: number;
  durationMs: number;
  /** Per writer: one keystroke every intervalMs. */
  intervalMs: number;
  /** This worker's writers are phase-shifted by phaseFraction × intervalMs / writers. */
  phaseFraction: number;
  keyBytes: number;
  /** After the last send, how long to wait for stragglers. */
  drainMs: number;
  /** Viewers measure against this writer schedule (fan-out). */
  viewerSchedule?: { t0: number; phaseMs: number; intervalMs: number; baseOff: number };
  /** Flood inputs' size and how many bytes may be unechoed at once. */
  floodBytes?: number;
  floodWindow?: number;
  /** Epoch ms of an event (a node kill) after which resumption is timed. */
  watchResumeAfter?: number;
}

export type ParentMsg = ConnectMsg | MeasureMsg | { type: 'close' };

export interface ConnectedMsg {
  type: 'connected';
  ok: number;
  failed: number;
  errors: string[];
  /** Connect + open/attach time per connection, µs, HDR compressed base64. */
  setupHist: string;
  firstDoneAt: number;
  lastDoneAt: number;
  /** Session id and node of each connection, in order ('' when none or failed). */
  sids: string[];
  nodes: string[];
  /** Next expected output offset of each connection. */
  heads: number[];
  rss: number;
}

export interface ProgressMsg {
  type: 'progress';
  sent: number;
  received: number;
  errors: number;
}

export interface ResultMsg {
  type: 'result';
  /** Latency from the intended send time, µs, HDR compressed base64. */
  hist: string;
  /** Latency from the actual send time (the harness's own lag excluded), µs. */
  histFromSend: string;
  /** Keystrokes scheduled in the measured window (× viewers for fan-out). */
  expected: number;
  /** Of those, how many were seen echoed. */
  received: number;
  sent: number;
  errors: number;
  errorSamples: string[];
  /** Bytes missing from the offset sequence (server gaps or jumps) and bytes repeated. */
  lostBytes: number;
  dupBytes: number;
  gapFrames: number;
  ownerFrames: number;
  exitFrames: number;
  closes: number;
  /** Output bytes received during the measured window (flood throughput). */
  bytesIn: number;
  floodBytesIn: number;
  /** Per connection that saw an interruption: ms from watchResumeAfter to its first output after it. */
  resumeMs: number[];
  notResumed: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  wallMs: number;
  rss: number;
  /** The worst lateness of the send loop behind schedule, ms. */
  maxSendLagMs: number;
}

export type WorkerMsg = ConnectedMsg | ProgressMsg | ResultMsg;
