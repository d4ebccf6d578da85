import type { Principal } from '../auth/principal.js';
import type { ClientFrame } from '../protocol/frames.js';
import type { ClientId } from '../util/ids.js';
import type { Attachment } from './attachment.js';

/** What the edge needs of a socket: kept narrow so the edge logic is testable. */
export interface SocketLike {
  send(bytes: Uint8Array): boolean;
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

/** A frame waiting for an earlier one of its connection to take effect. */
export interface HeldFrame {
  frame: ClientFrame;
  bytes: number;
}

/** Our state for one WebSocket connection (never properties patched onto uWS objects). */
export class ClientConn {
  readonly attachments = new Map<string, Attachment>();
  badFrames = 0;
  badFramesSince = Date.now();
  closed = false;
  /**
   * Ordered dispatch: true while an `open`, `attach` or `kill` of this connection is
   * taking effect. Later frames wait in `held` (bounded) and run in order after it.
   */
  busy = false;
  held: HeldFrame[] = [];
  heldBytes = 0;
  heldOverflows = 0;
  heldOverflowsSince = Date.now();
  /** The screen snapshot this connection has in flight: at most one at a time. */
  snapshot: Promise<void> | undefined;

  constructor(readonly id: ClientId, readonly principal: Principal, readonly socket: SocketLike, readonly ip: string) {}
}
