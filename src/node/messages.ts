/**
 * Messages nodes send each other over the Bus (never seen by clients). MessagePack
 * maps like the wire frames, with a `t` discriminant.
 *
 *   edge ──sessionControl(sid)──▶ owner host      in · resize · watch · kill (in and resize
 *                                                 also as an array of them, in order)
 *   edge ──nodeInbox(host)──────▶ host            open
 *   host ──nodeInbox(edge)──────▶ edge            ack (input counter) · refused (input dropped) · reply
 *   host ──sessionEvents(sid)───▶ every edge      out · resized · owner · exit (client frames)
 */
import type { OpenSpec } from '../protocol/frames.js';
import type { ClientId, Epoch, NodeId, SessionId } from '../util/ids.js';
import type { WireErrorCode } from '../errors/errors.js';

export interface InputCommand { t: 'in'; data: Uint8Array; n?: number; c: ClientId; e: NodeId }
export interface ResizeCommand { t: 'resize'; cols: number; rows: number; c: ClientId; e: NodeId }
/**
 * An edge's view of one session, sent when it changes and again for every watched session
 * after a bus outage (pub/sub is at most once); never refreshed per session in steady
 * state. The host forgets an edge's views once the edge leaves the registry.
 */
export interface WatchCommand {
  t: 'watch';
  e: NodeId;
  writers: number;
  viewers: number;
  /** [client, cols, rows] for each local writer that sent a size. */
  sizes: Array<[ClientId, number, number]>;
  /** True when one of this edge's writers is above the high watermark. */
  paused: boolean;
}
export interface KillCommand { t: 'kill'; signal: string; rid: number; e: NodeId }
export type ControlMessage = InputCommand | ResizeCommand | WatchCommand | KillCommand;

export interface OpenRequest { t: 'open'; rid: number; e: NodeId; sid: SessionId; spec: OpenSpec; owner: string }
export interface InputAck { t: 'ack'; sid: SessionId; c: ClientId; n: number }
/**
 * Input of client `c` the host dropped: its program is not reading and the bound of
 * input waiting for it is reached. The edge answers the client `error rate_limited`.
 */
export interface InputRefused { t: 'refused'; sid: SessionId; c: ClientId; n?: number; msg: string; retryMs: number }
export interface Reply {
  t: 'reply';
  rid: number;
  ok: boolean;
  node?: NodeId;
  epoch?: Epoch;
  code?: WireErrorCode;
  msg?: string;
}
export type InboxMessage = OpenRequest | InputAck | InputRefused | Reply;

