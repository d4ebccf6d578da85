/**
 * The frames of PROTOCOL.md v1 as a discriminated union on `t`. Field names are exact;
 * docs/protocol.md records our optional extensions (`snap` on `out`, `policy`, `onLoss`
 * and `sid` on `open`, `temporary` and `retryMs` on `error`).
 */
import type { Offset, SessionId, NodeId, Epoch } from '../util/ids.js';
import type { WireErrorCode } from '../errors/errors.js';

export type SessionKind = 'pty' | 'agent' | 'echo';
export type Role = 'writer' | 'viewer';
export type ResizePolicy = 'latest' | 'smallest' | 'largest' | 'fixed';
/** What happens to a pty session when its owner dies (issue: failover). */
export type LossPolicy = 'lost' | 'restart';

export interface OpenSpec {
  kind: SessionKind;
  cmd?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  cols: number;
  rows: number;
  name?: string;
  policy: ResizePolicy;
  onLoss: LossPolicy;
}

// Client → server
/** On the wire the spec's fields sit at the top level of the frame; parsing gathers them. */
/** `sid` (extension): a client-chosen session id, so later frames can be pipelined behind `open`. */
export interface OpenFrame { t: 'open'; ref: number; spec: OpenSpec; sid?: SessionId }
export interface AttachFrame { t: 'attach'; ref: number; sid: SessionId; from?: Offset; role: Role }
export interface InFrame { t: 'in'; sid: SessionId; data: Uint8Array; n?: number }
export interface ResizeFrame { t: 'resize'; sid: SessionId; cols: number; rows: number }
export interface AckFrame { t: 'ack'; sid: SessionId; off: Offset }
export interface DetachFrame { t: 'detach'; sid: SessionId }
export interface KillFrame { t: 'kill'; ref: number; sid: SessionId; signal: string }
export interface PingFrame { t: 'ping'; ref: number }

export type ClientFrame =
  | OpenFrame
  | AttachFrame
  | InFrame
  | ResizeFrame
  | AckFrame
  | DetachFrame
  | KillFrame
  | PingFrame;

// Server → client
export interface OpenedFrame { t: 'opened'; ref: number; sid: SessionId; node: NodeId }
export interface AttachedFrame {
  t: 'attached'; ref: number; sid: SessionId; head: Offset; node: NodeId; cols: number; rows: number;
}
export interface KilledFrame { t: 'killed'; ref: number; sid: SessionId }
export interface PongFrame { t: 'pong'; ref: number; node: NodeId; ts: number }
/** `snap: true` (extension): `data` is a screen snapshot as of `off`; the next output starts at `off`. */
export interface OutFrame { t: 'out'; sid: SessionId; off: Offset; data: Uint8Array; snap?: true }
export interface InputAckFrame { t: 'ack'; sid: SessionId; n: number }
export interface ResizedFrame { t: 'resized'; sid: SessionId; cols: number; rows: number }
export interface GapFrame { t: 'gap'; sid: SessionId; from: Offset; to: Offset }
export interface OwnerFrame { t: 'owner'; sid: SessionId; node: NodeId; epoch: Epoch }
export interface ExitFrame { t: 'exit'; sid: SessionId; code: number; signal?: string; reason?: string }
/** `temporary` and `retryMs` (extensions): whether retrying may succeed, and when to. */
export interface ErrorFrame {
  t: 'error'; ref?: number; sid?: SessionId; code: WireErrorCode; msg: string; temporary: boolean; retryMs?: number;
}
export interface ByeFrame { t: 'bye'; reason: string; retryMs: number }

export type ServerFrame =
  | OpenedFrame
  | AttachedFrame
  | KilledFrame
  | PongFrame
  | OutFrame
  | InputAckFrame
  | ResizedFrame
  | GapFrame
  | OwnerFrame
  | ExitFrame
  | ErrorFrame
  | ByeFrame;
