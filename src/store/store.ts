/**
 * Store: durable records of sessions, their audit events and an archive of their output.
 *
 * Contract (test/contract/store.ts):
 * - `createSession` fails with `conflict` if the sid exists.
 * - `updateSession(sid, epoch, patch)` applies only when the stored epoch is <= `epoch`
 *   (checked inside the database), stores `epoch`, and returns false when fenced or
 *   missing. Fields not in the patch are unchanged.
 * - `listSessions` filters by any given field, newest first (ties by sid); `after` pages.
 * - `deleteEnded(before, limit)` removes ended sessions last active before `before`, with
 *   their events, links and archive, and never a starting or running one.
 * - `archive(sid, epoch, off, data)` keeps output beyond the Redis replay window
 *   (write-behind: callers batch); `readArchive` returns chunks covering [from, …).
 * - Share links: `createLink` fails with `conflict` if the id exists; `revokeLink(sid,
 *   id, at)` returns false when no link `id` belongs to `sid`, keeps the first revocation
 *   time when revoked twice; `inactiveLinks(ids)` names those of `ids` that are revoked
 *   or unknown (every node asks the same store, so a revocation holds everywhere).
 * - `appendAudit` keeps events that belong to no session (logins), in order;
 *   `listAudit` returns the newest `limit` of them, oldest first.
 * - `reserveSession(owner, id, max, expiresAt, now)` counts the owner's starting and
 *   running sessions plus its reservations unexpired at `now`; below `max` it adds
 *   reservation `id` and answers ok. Atomic per owner: of opens racing on any nodes, at
 *   most `max` minus the count pass. `id` is the sid the open means to create: once
 *   that session's record exists the reservation no longer counts (the record does), so
 *   an open is never counted twice between its record and its release. Reserving an id
 *   held already is not an error. `releaseReservation(id)` removes it (unknown ids are
 *   fine).
 *
 * Session status machine: starting → running → exited | lost; running → running with a
 * new node and epoch on failover.
 */
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { LossPolicy, ResizePolicy, Role, SessionKind } from '../protocol/frames.js';
import type { LogChunk } from '../log/log.js';

export type SessionStatus = 'starting' | 'running' | 'exited' | 'lost';

export interface SessionRecord {
  sid: SessionId;
  kind: SessionKind;
  /** The principal that opened it. */
  owner: string;
  /** The node that runs it now (the lease holder when last written). */
  node: NodeId;
  epoch: Epoch;
  status: SessionStatus;
  cols: number;
  rows: number;
  policy: ResizePolicy;
  onLoss: LossPolicy;
  cmd: string | null;
  args: string[];
  cwd: string | null;
  /** The session's own environment additions (never the server's). */
  env: Record<string, string>;
  name: string | null;
  createdAt: number;
  lastActivity: number;
  clients: number;
  exitCode: number | null;
  exitSignal: string | null;
  exitReason: string | null;
}

export type SessionPatch = Partial<Pick<SessionRecord,
  'node' | 'status' | 'cols' | 'rows' | 'lastActivity' | 'clients' | 'exitCode' | 'exitSignal' | 'exitReason' | 'cwd'>>;

export interface SessionTouch {
  sid: SessionId;
  epoch: Epoch;
  lastActivity: number;
  clients: number;
}

export interface SessionFilter {
  owner?: string;
  node?: NodeId;
  /** Only sessions whose node is none of these (the reaper: nodes not alive). */
  notNodes?: NodeId[];
  status?: SessionStatus[];
  /** At most this many (newest first). */
  limit?: number;
  /** Only sessions after this one in the listing order (newest first; a page's last). */
  after?: SessionCursor;
}

/** A position in the listing order (created_at descending, then sid ascending). */
export interface SessionCursor {
  createdAt: number;
  sid: SessionId;
}

export interface SessionEvent {
  sid: SessionId;
  epoch: Epoch;
  type: string;
  detail: Record<string, unknown>;
  at: number;
}

export interface ShareLink {
  id: string;
  sid: SessionId;
  role: Role;
  /** The principal that minted it. */
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** An audit event that belongs to no session: a login, or a refused one. */
export interface AuditEvent {
  type: string;
  /** The principal's name; null when the credential did not name one (a failed login). */
  principal: string | null;
  /** The client address. */
  addr: string;
  detail: Record<string, unknown>;
  at: number;
}

/** The answer of reserveSession: `count` is the sessions and reservations found before adding one. */
export interface Reservation {
  ok: boolean;
  count: number;
}

export interface AuditFilter {
  type?: string;
  /** Newest events kept in the answer (default 1000). */
  limit?: number;
}

export interface Store {
  createSession(record: SessionRecord): Promise<void>;
  getSession(sid: SessionId): Promise<SessionRecord | null>;
  updateSession(sid: SessionId, epoch: Epoch, patch: SessionPatch): Promise<boolean>;
  listSessions(filter?: SessionFilter): Promise<SessionRecord[]>;
  /**
   * Records activity and client counts of many sessions in one write (the host calls
   * it every few seconds), each conditional on its epoch like `updateSession`.
   */
  touchSessions(touches: readonly SessionTouch[]): Promise<void>;
  appendEvent(event: SessionEvent): Promise<void>;
  /** Many events in one write (the audit writer batches). */
  appendEvents(events: readonly SessionEvent[]): Promise<void>;
  listEvents(sid: SessionId): Promise<SessionEvent[]>;
  appendAudit(events: readonly AuditEvent[]): Promise<void>;
  reserveSession(owner: string, id: string, max: number, expiresAt: number, now: number): Promise<Reservation>;
  releaseReservation(id: string): Promise<void>;
  listAudit(filter?: AuditFilter): Promise<AuditEvent[]>;
  createLink(link: ShareLink): Promise<void>;
  getLink(id: string): Promise<ShareLink | null>;
  /** The session's links, oldest first, revoked ones included. */
  listLinks(sid: SessionId): Promise<ShareLink[]>;
  revokeLink(sid: SessionId, id: string, at: number): Promise<boolean>;
  inactiveLinks(ids: readonly string[]): Promise<string[]>;
  archive(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void>;
  readArchive(sid: SessionId, from: Offset, maxBytes: number): Promise<LogChunk[]>;
  /** The end of the archived output (0 when none): a floor for the head after Redis lost a log. */
  archivedHead(sid: SessionId): Promise<Offset>;
  /** archivedHead of many sessions in one round trip (a takeover of a dead node's sessions). */
  archivedHeads(sids: readonly SessionId[]): Promise<Map<SessionId, Offset>>;
  /**
   * Moves many sessions to `node`, running, at their new epochs, in one write; each row
   * is conditional on its epoch like `updateSession`. Returns the sids that moved.
   */
  moveSessions(moves: ReadonlyArray<{ sid: SessionId; epoch: Epoch }>, node: NodeId): Promise<Set<SessionId>>;
  /**
   * Retention: deletes at most `limit` sessions that ended (exited or lost) with their
   * last activity before `before`, with their events, share links and archived output.
   * Returns how many it deleted. Safe to run on several nodes at once.
   */
  deleteEnded(before: number, limit: number): Promise<number>;
  isHealthy(): boolean;
  close(): Promise<void>;
}
