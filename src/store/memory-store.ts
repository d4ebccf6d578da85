import { SwitchboardError } from '../errors/errors.js';
import { sliceChunks } from '../log/slice.js';
import type { LogChunk } from '../log/log.js';
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { AuditEvent, AuditFilter, Reservation, SessionEvent, SessionFilter, SessionPatch, SessionRecord, SessionTouch, ShareLink, Store } from './store.js';

const DEFAULT_AUDIT_LIST = 1000;

/**
 * In-process store. Bounded: ended sessions beyond `maxEnded` are forgotten oldest
 * first (with their events and links), the archive keeps at most `archiveBytes` per
 * session and the audit log its newest `auditEvents`, so a long-running embedded node
 * does not grow without end. (Links per session are bounded by their minter.)
 */
export class MemoryStore implements Store {
  private readonly sessions = new Map<SessionId, SessionRecord>();
  private readonly events = new Map<SessionId, SessionEvent[]>();
  private readonly archives = new Map<SessionId, { chunks: LogChunk[]; start: Offset; head: Offset; bytes: number }>();
  private readonly links = new Map<string, ShareLink>();
  private audit: AuditEvent[] = [];
  private readonly reservations = new Map<string, { owner: string; expiresAt: number }>();

  constructor(private readonly limits = { maxEnded: 10_000, archiveBytes: 4 * 1024 * 1024, eventsPerSession: 1000, auditEvents: 10_000 }) {}

  async createSession(record: SessionRecord): Promise<void> {
    if (this.sessions.has(record.sid)) throw new SwitchboardError('conflict', `session ${record.sid} exists already`);
    this.sessions.set(record.sid, { ...record, args: [...record.args], env: { ...record.env } });
  }

  async getSession(sid: SessionId): Promise<SessionRecord | null> {
    const r = this.sessions.get(sid);
    return r ? { ...r } : null;
  }

  async updateSession(sid: SessionId, epoch: Epoch, patch: SessionPatch): Promise<boolean> {
    const r = this.sessions.get(sid);
    if (!r || r.epoch > epoch) return false;
    Object.assign(r, patch, { epoch });
    if (patch.status === 'exited' || patch.status === 'lost') this.forgetOldEnded();
    return true;
  }

  async touchSessions(touches: readonly SessionTouch[]): Promise<void> {
    for (const t of touches) {
      const r = this.sessions.get(t.sid);
      if (r && r.epoch <= t.epoch) {
        r.lastActivity = t.lastActivity;
        r.clients = t.clients;
      }
    }
  }

  async listSessions(filter: SessionFilter = {}): Promise<SessionRecord[]> {
    const out: SessionRecord[] = [];
    for (const r of this.sessions.values()) {
      if (filter.owner !== undefined && r.owner !== filter.owner) continue;
      if (filter.node !== undefined && r.node !== filter.node) continue;
      if (filter.notNodes !== undefined && filter.notNodes.includes(r.node)) continue;
      if (filter.status !== undefined && !filter.status.includes(r.status)) continue;
      const after = filter.after;
      if (after !== undefined && !(r.createdAt < after.createdAt || (r.createdAt === after.createdAt && r.sid > after.sid))) continue;
      out.push({ ...r });
    }
    out.sort((a, b) => b.createdAt - a.createdAt || (a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0));
    return filter.limit !== undefined ? out.slice(0, filter.limit) : out;
  }

  /** One event-loop turn from count to insert: atomic in this process. */
  async reserveSession(owner: string, id: string, max: number, expiresAt: number, now: number): Promise<Reservation> {
    let count = 0;
    for (const [rid, r] of this.reservations) {
      if (r.expiresAt <= now) this.reservations.delete(rid);
      else if (r.owner === owner && !this.sessions.has(rid)) count++;
    }
    for (const r of this.sessions.values()) if (r.owner === owner && (r.status === 'starting' || r.status === 'running')) count++;
    if (count >= max) return { ok: false, count };
    this.reservations.set(id, { owner, expiresAt });
    return { ok: true, count };
  }

  async releaseReservation(id: string): Promise<void> {
    this.reservations.delete(id);
  }

  async deleteEnded(before: number, limit: number): Promise<number> {
    let n = 0;
    for (const r of [...this.sessions.values()]) {
      if (n >= limit) break;
      if ((r.status !== 'exited' && r.status !== 'lost') || r.lastActivity >= before) continue;
      this.sessions.delete(r.sid);
      this.events.delete(r.sid);
      this.archives.delete(r.sid);
      for (const [id, l] of this.links) if (l.sid === r.sid) this.links.delete(id);
      n++;
    }
    return n;
  }

  async appendEvent(event: SessionEvent): Promise<void> {
    let list = this.events.get(event.sid);
    if (!list) {
      list = [];
      this.events.set(event.sid, list);
    }
    list.push(event);
    if (list.length > this.limits.eventsPerSession) list.shift();
  }

  async appendEvents(events: readonly SessionEvent[]): Promise<void> {
    for (const e of events) await this.appendEvent(e);
  }

  async listEvents(sid: SessionId): Promise<SessionEvent[]> {
    return [...(this.events.get(sid) ?? [])];
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    for (const e of events) this.audit.push({ ...e, detail: { ...e.detail } });
    if (this.audit.length > this.limits.auditEvents) this.audit = this.audit.slice(-this.limits.auditEvents);
  }

  async listAudit(filter: AuditFilter = {}): Promise<AuditEvent[]> {
    const matching = filter.type === undefined ? this.audit : this.audit.filter((e) => e.type === filter.type);
    return matching.slice(-(filter.limit ?? DEFAULT_AUDIT_LIST)).map((e) => ({ ...e }));
  }

  async createLink(link: ShareLink): Promise<void> {
    if (this.links.has(link.id)) throw new SwitchboardError('conflict', `link ${link.id} exists already`);
    this.links.set(link.id, { ...link });
  }

  async getLink(id: string): Promise<ShareLink | null> {
    const l = this.links.get(id);
    return l ? { ...l } : null;
  }

  async listLinks(sid: SessionId): Promise<ShareLink[]> {
    return [...this.links.values()].filter((l) => l.sid === sid).sort((a, b) => a.createdAt - b.createdAt).map((l) => ({ ...l }));
  }

  async revokeLink(sid: SessionId, id: string, at: number): Promise<boolean> {
    const l = this.links.get(id);
    if (!l || l.sid !== sid) return false;
    l.revokedAt ??= at;
    return true;
  }

  async inactiveLinks(ids: readonly string[]): Promise<string[]> {
    return ids.filter((id) => {
      const l = this.links.get(id);
      return !l || l.revokedAt !== null;
    });
  }

  async archive(sid: SessionId, _epoch: Epoch, off: Offset, data: Uint8Array): Promise<void> {
    let a = this.archives.get(sid);
    if (!a) {
      a = { chunks: [], start: off, head: off, bytes: 0 };
      this.archives.set(sid, a);
    }
    if (off !== a.head) return; // duplicates from a retried write-behind flush
    a.chunks.push({ off, data: Uint8Array.from(data) });
    a.head += data.length;
    a.bytes += data.length;
    while (a.chunks.length > 1 && a.bytes - a.chunks[0]!.data.length >= this.limits.archiveBytes) {
      a.bytes -= a.chunks.shift()!.data.length;
      a.start = a.chunks[0]!.off;
    }
  }

  async readArchive(sid: SessionId, from: Offset, maxBytes: number): Promise<LogChunk[]> {
    const a = this.archives.get(sid);
    if (!a) return [];
    return sliceChunks(a.chunks, a.start, a.head, from, maxBytes).chunks;
  }

  async archivedHead(sid: SessionId): Promise<Offset> {
    return this.archives.get(sid)?.head ?? 0;
  }

  async archivedHeads(sids: readonly SessionId[]): Promise<Map<SessionId, Offset>> {
    return new Map(sids.map((sid) => [sid, this.archives.get(sid)?.head ?? 0]));
  }

  async moveSessions(moves: ReadonlyArray<{ sid: SessionId; epoch: Epoch }>, node: NodeId): Promise<Set<SessionId>> {
    const moved = new Set<SessionId>();
    for (const m of moves) if (await this.updateSession(m.sid, m.epoch, { node, status: 'running' })) moved.add(m.sid);
    return moved;
  }

  isHealthy(): boolean {
    return true;
  }

  private forgetOldEnded(): void {
    const ended = [...this.sessions.values()].filter((r) => r.status === 'exited' || r.status === 'lost');
    if (ended.length <= this.limits.maxEnded) return;
    ended.sort((a, b) => a.lastActivity - b.lastActivity);
    const forgotten = new Set<SessionId>();
    for (const r of ended.slice(0, ended.length - this.limits.maxEnded)) {
      this.sessions.delete(r.sid);
      this.events.delete(r.sid);
      this.archives.delete(r.sid);
      forgotten.add(r.sid);
    }
    if (this.links.size > 0) for (const [id, l] of this.links) if (forgotten.has(l.sid)) this.links.delete(id);
  }

  async close(): Promise<void> {}
}
