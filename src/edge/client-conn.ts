import type { ClientId } from '../util/ids.js';
import type { Attachment } from './attachment.js';

/** What the edge needs of a socket: kept narrow so the edge logic is testable. */
export interface SocketLike {
  send(bytes: Uint8Array): boolean;
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

/** Our state for one WebSocket connection (never properties patched onto uWS objects). */
export class ClientConn {
  readonly attachments = new Map<string, Attachment>();
  badFrames = 0;
  badFramesSince = Date.now();
  closed = false;

  constructor(readonly id: ClientId, readonly principal: string, readonly socket: SocketLike, readonly ip: string) {}
}
