/**
 * One client watching one session through this edge.
 *
 * State: replaying → live → (lagging → replaying → live)* → closed
 *  - replaying: reading the log from `next` until caught up with the head;
 *  - live: forwarding bus events as they come (encoded once, the same bytes to all);
 *  - lagging: the socket's send buffer is over the limit; nothing is sent until it
 *    drains, then the attachment replays from the log (a `gap` if it fell out of it).
 */
import type { Role } from '../protocol/frames.js';
import type { Offset, SessionId } from '../util/ids.js';
import type { ClientConn } from './client-conn.js';

export type AttachmentState = 'replaying' | 'live' | 'lagging' | 'closed';

export class Attachment {
  state: AttachmentState = 'replaying';
  /** The next output offset this client should receive. */
  next: Offset;
  /** Output the client said it consumed (ack); undefined until its first ack. */
  acked: Offset | undefined;
  /** Set while above the high watermark, cleared below the low one (hysteresis). */
  overWatermark = false;
  /** When it went over the high watermark (a writer pausing the session since then). */
  overSince = 0;
  /**
   * Replaying: how far the log's head was ahead of `next` at the last read. A writer this
   * far behind is as slow as one with that much unacknowledged: flow control counts it.
   */
  behind = 0;
  /** A live event arrived while replaying: read the log once more before going live. */
  missedWhileReplaying = false;
  /** Non-output frames (resized, owner, exit) held until the replay caught up. */
  held: Uint8Array[] = [];
  /** The session's `exit` was queued or sent: leave the watch once caught up. */
  exitSeen = false;
  size: { cols: number; rows: number } | undefined;
  /** Keystroke timing (metrics): performance.now() of the oldest `in` not yet answered by output, 0 when none. */
  keyAt = 0;
  /** Its session is a terminal or echo: input there is keystrokes (agent replies take their time). */
  timesKeys = false;

  constructor(readonly client: ClientConn, readonly sid: SessionId, readonly role: Role, from: Offset) {
    this.next = from;
  }

  get isWriter(): boolean {
    return this.role === 'writer';
  }

  /** Bytes sent but not acknowledged, as the flow-control watermarks see them. */
  unacked(bufferedBytes: number): number {
    const sent = this.acked === undefined ? bufferedBytes : Math.max(this.next - this.acked, bufferedBytes);
    return this.state === 'replaying' ? sent + this.behind : sent;
  }
}
