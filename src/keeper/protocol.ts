/**
 * The keeper protocol: how a node talks to the keeper process that holds its terminals,
 * over a Unix socket on the same machine (docs/keeper.md).
 *
 * Framing: a 4-byte big-endian length, then one MessagePack map (src/protocol/codec.ts)
 * with a string field `t`. Byte payloads are `bin`.
 *
 *   node                                   keeper
 *    │ hello {id, v, node}                   │  first frame; reply {pid, v}
 *    │ spawn {id, sid, epoch, base, spec…} ─▶│  new PTY, attached to this connection
 *    │ attach {id, sid, epoch, from} ──────▶│  reattach a kept PTY: output resent from `from`
 *    │◀──────────── data {sid, off, data} ──│  every byte once, at its session offset
 *    │ ack {sid, off} ─────────────────────▶│  the log holds output below `off`: drop it
 *    │ write / resize / pause / resume / kill / note {sid, …} (owner connection only)
 *    │◀──────── input {sid, received, queued} ─│  input still waiting for the program (bounds it)
 *    │◀──────────────── exit {sid, code} ───│  after the last data
 *    │ release {sid} ──────────────────────▶│  the exit is recorded: forget the PTY
 *    │ detach {id, sid} ───────────────────▶│  hand the PTY to the keeper (drain)
 *    │ discard {id, sid, below?} ──────────▶│  kill it and forget it (fenced, or a stale copy)
 *    │ list {id} ──────────────────────────▶│  what the keeper holds (adoption)
 *
 * Offsets are the session's own output offsets (PROTOCOL.md): a PTY spawned at `base`
 * numbers its first byte `base`. The keeper keeps every byte the node has not
 * acknowledged, so a node that died resumes with `attach {from: log head}`: no gap, no
 * duplicate. Requests carry `id` and get `reply {id, ok, …}`; the rest get no answer.
 *
 * Ownership at the keeper: a PTY is attached to at most one connection. `attach` carries
 * the owner epoch the node won in the owner record; the keeper refuses an epoch lower
 * than the last one it saw for that PTY (a second fence, behind the owner record's).
 * Only the attached connection may write to, resize, pause or ack the PTY.
 *
 * Versioning: the keeper outlives node upgrades, so a node must speak to keepers started
 * by older versions. `v` only ever grows; fields are only ever added.
 */
import { decodeMessage, encodeValue } from '../protocol/codec.js';
import type { OpenSpec } from '../protocol/frames.js';
import type { WireErrorCode } from '../errors/errors.js';
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';

export const KEEPER_PROTOCOL_VERSION = 1;
/** Largest frame either side accepts: a data frame is at most one PTY read (64 KiB). */
export const MAX_KEEPER_FRAME = 16 * 1024 * 1024;
const HEADER_BYTES = 4;

/** What the keeper knows of a session, enough for a node with an empty store to recreate it. */
export interface KeptOrigin {
  spec: OpenSpec;
  /** The principal that opened the session. */
  owner: string;
  createdAt: number;
}

export interface KeptExit {
  code: number;
  signal?: string;
}

/** One PTY as `list` reports it. */
export interface KeptSessionInfo extends KeptOrigin {
  sid: SessionId;
  pid: number;
  /** The highest owner epoch that attached (or spawned) it. */
  epoch: Epoch;
  /** Oldest output byte the keeper still holds. */
  start: Offset;
  /** Next output offset (every byte read so far). */
  total: Offset;
  /** The node acknowledged output below this offset. */
  confirmed: Offset;
  /** Not reading the PTY: the node asked, or the buffer is full. */
  paused: boolean;
  /** Node id of the connection it is attached to; null when kept for adoption. */
  attached: NodeId | null;
  /** Attached to the connection that asked. */
  mine: boolean;
  /** The program ended (its exit not yet recorded by a node). */
  exit: KeptExit | null;
  /** Bytes held in the buffer. */
  buffered: number;
}

export interface BufferLimits {
  /** Unacknowledged output held before the PTY is paused. */
  maxBuffer: number;
  /** Acknowledged output kept anyway, for a node whose log lives in its own memory. */
  retain: number;
  /**
   * Unacknowledged output of all the keeper's terminals together beyond which each is
   * held to the floor (src/keeper/output-buffer.ts). Absent from older nodes: the default.
   */
  budget?: number;
}

// ─── node → keeper

export interface HelloRequest { t: 'hello'; id: number; v: number; node: NodeId; pid: number }
export interface SpawnRequest extends KeptOrigin, BufferLimits { t: 'spawn'; id: number; sid: SessionId; epoch: Epoch; base: Offset }
export interface AttachRequest extends BufferLimits { t: 'attach'; id: number; sid: SessionId; epoch: Epoch; from: Offset }
export interface DetachRequest { t: 'detach'; id: number; sid: SessionId }
/** Unconditional from the attached connection; otherwise only if unattached and its epoch is below `below`. */
export interface DiscardRequest { t: 'discard'; id: number; sid: SessionId; below?: Epoch }
/** `unattached`: only PTYs no connection holds (what a node may adopt; usually none). */
export interface ListRequest { t: 'list'; id: number; unattached?: boolean }
export interface WriteMessage { t: 'write'; sid: SessionId; data: Uint8Array }
export interface ResizeMessage { t: 'resize'; sid: SessionId; cols: number; rows: number }
export interface PauseMessage { t: 'pause' | 'resume'; sid: SessionId }
export interface KillMessage { t: 'kill'; sid: SessionId; signal: string }
export interface AckMessage { t: 'ack'; sid: SessionId; off: Offset }
/** Bytes of the node's own (a notice) into the output stream, in order with the PTY's. */
export interface NoteMessage { t: 'note'; sid: SessionId; data: Uint8Array }
export interface ReleaseMessage { t: 'release'; sid: SessionId }

export type KeeperRequest = HelloRequest | SpawnRequest | AttachRequest | DetachRequest | DiscardRequest | ListRequest;
export type NodeToKeeper =
  | KeeperRequest | WriteMessage | ResizeMessage | PauseMessage | KillMessage | AckMessage | NoteMessage | ReleaseMessage;

// ─── keeper → node

export interface OkReply { t: 'reply'; id: number; ok: true; [field: string]: unknown }
export interface ErrorReply { t: 'reply'; id: number; ok: false; code: WireErrorCode; msg: string }
export interface DataEvent { t: 'data'; sid: SessionId; off: Offset; data: Uint8Array }
export interface ExitEvent { t: 'exit'; sid: SessionId; code: number; signal?: string }
/** Another connection attached the PTY at an equal or higher epoch: stop using it. */
export interface DetachedEvent { t: 'detached'; sid: SessionId; reason: string }
/**
 * Input: `received` bytes of `write` since this connection attached, of which `queued`
 * still wait in the keeper for a program that does not read them. Sent every 64 KiB
 * received and whenever the queue grows, shrinks or drains by as much, not per
 * keystroke: the node's estimate (queued + what it wrote since `received`) is off by
 * less than that, enough to bound input for a program that never reads.
 */
export interface InputEvent { t: 'input'; sid: SessionId; received: number; queued: number }

export type KeeperToNode = OkReply | ErrorReply | DataEvent | ExitEvent | DetachedEvent | InputEvent;

export function encodeKeeperFrame(message: NodeToKeeper | KeeperToNode): Buffer {
  const body = encodeValue(message);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frames. Throws on a frame over MAX_KEEPER_FRAME or one that
 * is not a map with a string `t`: the connection is then closed, never resynchronised.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): unknown[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: unknown[] = [];
    while (this.pendingBytes >= HEADER_BYTES) {
      if (this.pending[0]!.length < HEADER_BYTES) this.pending = [Buffer.concat(this.pending, this.pendingBytes)];
      const length = this.pending[0]!.readUInt32BE(0);
      if (length > MAX_KEEPER_FRAME) throw new Error(`keeper frame of ${length} bytes exceeds ${MAX_KEEPER_FRAME}`);
      // Joined only once the whole frame is here: a big frame in many reads is copied once.
      if (this.pendingBytes < HEADER_BYTES + length) break;
      let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      const message = decodeMessage(buf.subarray(HEADER_BYTES, HEADER_BYTES + length)) as { t?: unknown } | null;
      if (message === null || typeof message !== 'object' || typeof message.t !== 'string') throw new Error('keeper frame is not a map with a string t');
      out.push(message);
      buf = buf.subarray(HEADER_BYTES + length);
      this.pending = buf.length > 0 ? [buf] : [];
      this.pendingBytes = buf.length;
    }
    return out;
  }
}
