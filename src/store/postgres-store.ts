import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { SwitchboardError } from '../errors/errors.js';
import { sliceChunks } from '../log/slice.js';
import type { LogChunk } from '../log/log.js';
import type { Epoch, NodeId, Offset, SessionId } from '../util/ids.js';
import type { AuditEvent, AuditFilter, Reservation, SessionEvent, SessionFilter, SessionPatch, SessionRecord, SessionTouch, ShareLink, Store } from './store.js';

/** One archive write: `data` at byte offset `off` of `sid`'s output, by the holder of `epoch`. */
export interface ArchiveRow {
  sid: SessionId;
  epoch: Epoch;
  off: Offset;
  data: Uint8Array;
}

/** What ArchiveWriter needs from a store: one multi-row, epoch-conditional, idempotent insert. */
export interface ArchiveSink {
  archiveBatch(rows: readonly ArchiveRow[]): Promise<void>;
}

export interface PostgresStoreOptions {
  /** How often to probe the database while unhealthy, so health recovers on an idle node. */
  probeIntervalMs?: number;
}

const DEFAULT_PROBE_INTERVAL_MS = 1000;
/**
 * Longer writes are stored as several rows, so a reader knows the row holding an offset
 * starts at most this far before it.
 */
const MAX_ARCHIVE_ROW_BYTES = 1024 * 1024;
/** PostgreSQL allows 65535 bind parameters per statement; 4 per archive row. */
const MAX_ARCHIVE_ROWS_PER_STATEMENT = 1000;
const UNIQUE_VIOLATION = '23505';
/** Rows per multi-row insert of events: 5-6 bind parameters each, far below 65535. */
const MAX_EVENT_ROWS_PER_STATEMENT = 1000;
const DEFAULT_AUDIT_LIST = 1000;

interface LinkRow {
  id: string;
  sid: string;
  role: ShareLink['role'];
  created_by: string;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
}

function toLink(r: LinkRow): ShareLink {
  return {
    id: r.id, sid: r.sid, role: r.role, createdBy: r.created_by, createdAt: r.created_at.getTime(),
    expiresAt: r.expires_at.getTime(), revokedAt: r.revoked_at ? r.revoked_at.getTime() : null,
  };
}

const PATCH_COLUMNS = {
  node: 'node',
  status: 'status',
  cols: 'cols',
  rows: 'rows',
  lastActivity: 'last_activity',
  clients: 'clients',
  exitCode: 'exit_code',
  exitSignal: 'exit_signal',
  exitReason: 'exit_reason',
  cwd: 'cwd',
} as const satisfies Record<keyof SessionPatch, string>;

const SESSION_COLUMNS = `sid, kind, owner, node, epoch, status, cols, rows, policy, on_loss, cmd, args, cwd, env,
  name, created_at, last_activity, clients, exit_code, exit_signal, exit_reason`;

interface SessionRow {
  sid: string;
  kind: SessionRecord['kind'];
  owner: string;
  node: string;
  epoch: string;
  status: SessionRecord['status'];
  cols: number;
  rows: number;
  policy: SessionRecord['policy'];
  on_loss: SessionRecord['onLoss'];
  cmd: string | null;
  args: string[];
  cwd: string | null;
  env: Record<string, string>;
  name: string | null;
  created_at: Date;
  last_activity: Date;
  clients: number;
  exit_code: number | null;
  exit_signal: string | null;
  exit_reason: string | null;
}

function toRecord(r: SessionRow): SessionRecord {
  return {
    sid: r.sid,
    kind: r.kind,
    owner: r.owner,
    node: r.node,
    epoch: Number(r.epoch),
    status: r.status,
    cols: r.cols,
    rows: r.rows,
    policy: r.policy,
    onLoss: r.on_loss,
    cmd: r.cmd,
    args: r.args,
    cwd: r.cwd,
    env: r.env,
    name: r.name,
    createdAt: r.created_at.getTime(),
    lastActivity: r.last_activity.getTime(),
    clients: r.clients,
    exitCode: r.exit_code,
    exitSignal: r.exit_signal,
    exitReason: r.exit_reason,
  };
}

/** pg sends a Buffer as a binary parameter; a plain Uint8Array is wrapped without a copy. */
function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A server-side error (it has a SQLSTATE) means the database answered, unless its class
 * says the connection or the server is going away: 08 connection exception, 53
 * insufficient resources, 57 operator intervention (shutdown, crash recovery).
 */
function isDatabaseUnreachable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return true;
  const { code, severity } = err as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || typeof severity !== 'string') return true;
  return /^(08|53|57)/.test(code);
}

/**
 * Store on PostgreSQL (schema in migrations/, applied by migrate()). The pool belongs
 * to the caller: close() stops using it, the caller ends it (after any ArchiveWriter
 * sharing it has closed).
 *
 * Fencing: updates and archive writes carry the writer's epoch and are conditional on
 * it inside the statement, so a paused ex-owner cannot overwrite a newer owner's row.
 */
export class PostgresStore implements Store, ArchiveSink {
  private healthy = true;
  private lastFailure: unknown;
  private probeTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly probeIntervalMs: number;
  private readonly onPoolError = (err: Error): void => this.markFailed(err);

  constructor(private readonly pool: Pool, options: PostgresStoreOptions = {}) {
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    // An idle client whose server went away emits on the pool; without a listener that
    // would be an uncaught 'error' event.
    pool.on('error', this.onPoolError);
  }

  async createSession(r: SessionRecord): Promise<void> {
    try {
      await this.query(
        `INSERT INTO sessions (${SESSION_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
        [r.sid, r.kind, r.owner, r.node, r.epoch, r.status, r.cols, r.rows, r.policy, r.onLoss, r.cmd,
          JSON.stringify(r.args), r.cwd, JSON.stringify(r.env), r.name, new Date(r.createdAt),
          new Date(r.lastActivity), r.clients, r.exitCode, r.exitSignal, r.exitReason],
      );
    } catch (err) {
      if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) {
        throw new SwitchboardError('conflict', `session ${r.sid} exists already`, { cause: err });
      }
      throw err;
    }
  }

  async getSession(sid: SessionId): Promise<SessionRecord | null> {
    const { rows } = await this.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE sid = $1`, [sid]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async updateSession(sid: SessionId, epoch: Epoch, patch: SessionPatch): Promise<boolean> {
    const values: unknown[] = [sid, epoch];
    const sets = ['epoch = $2'];
    for (const key of Object.keys(PATCH_COLUMNS) as Array<keyof SessionPatch>) {
      const value = patch[key];
      if (value === undefined) continue;
      values.push(key === 'lastActivity' ? new Date(value as number) : value);
      sets.push(`${PATCH_COLUMNS[key]} = $${values.length}`);
    }
    const result = await this.query(`UPDATE sessions SET ${sets.join(', ')} WHERE sid = $1 AND epoch <= $2`, values);
    return (result.rowCount ?? 0) > 0;
  }

  async touchSessions(touches: readonly SessionTouch[]): Promise<void> {
    if (touches.length === 0) return;
    // One statement for any number of sessions: four array parameters, unnested.
    await this.query(
      `UPDATE sessions s SET last_activity = to_timestamp(v.la / 1000.0), clients = v.c
       FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::int[]) AS v(sid, epoch, la, c)
       WHERE s.sid = v.sid AND s.epoch <= v.epoch`,
      [touches.map((t) => t.sid), touches.map((t) => t.epoch), touches.map((t) => t.lastActivity), touches.map((t) => t.clients)],
    );
  }

  async listSessions(filter: SessionFilter = {}): Promise<SessionRecord[]> {
    const values: unknown[] = [];
    const where: string[] = [];
    if (filter.owner !== undefined) {
      values.push(filter.owner);
      where.push(`owner = $${values.length}`);
    }
    if (filter.node !== undefined) {
      values.push(filter.node);
      where.push(`node = $${values.length}`);
    }
    if (filter.notNodes !== undefined) {
      values.push(filter.notNodes);
      where.push(`node <> ALL($${values.length}::text[])`);
    }
    if (filter.status !== undefined) {
      values.push(filter.status);
      where.push(`status = ANY($${values.length}::text[])`);
    }
    if (filter.after !== undefined) {
      values.push(new Date(filter.after.createdAt), filter.after.sid);
      const c = `$${values.length - 1}::timestamptz`;
      where.push(`(created_at < ${c} OR (created_at = ${c} AND sid > $${values.length}))`);
    }
    let limit = '';
    if (filter.limit !== undefined) {
      values.push(filter.limit);
      limit = `LIMIT $${values.length}`;
    }
    const { rows } = await this.query<SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM sessions
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, sid ${limit}`,
      values,
    );
    return rows.map(toRecord);
  }

  async appendEvent(e: SessionEvent): Promise<void> {
    await this.query('INSERT INTO session_events (sid, epoch, type, detail, at) VALUES ($1, $2, $3, $4, $5)',
      [e.sid, e.epoch, e.type, JSON.stringify(e.detail), new Date(e.at)]);
  }

  async appendEvents(events: readonly SessionEvent[]): Promise<void> {
    for (let at = 0; at < events.length; at += MAX_EVENT_ROWS_PER_STATEMENT) {
      const values: unknown[] = [];
      const tuples = events.slice(at, at + MAX_EVENT_ROWS_PER_STATEMENT).map((e) => {
        values.push(e.sid, e.epoch, e.type, JSON.stringify(e.detail), new Date(e.at));
        const n = values.length;
        return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
      });
      await this.query(`INSERT INTO session_events (sid, epoch, type, detail, at) VALUES ${tuples.join(', ')}`, values);
    }
  }

  async appendAudit(events: readonly AuditEvent[]): Promise<void> {
    for (let at = 0; at < events.length; at += MAX_EVENT_ROWS_PER_STATEMENT) {
      const values: unknown[] = [];
      const tuples = events.slice(at, at + MAX_EVENT_ROWS_PER_STATEMENT).map((e) => {
        values.push(e.type, e.principal, e.addr, JSON.stringify(e.detail), new Date(e.at));
        const n = values.length;
        return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
      });
      await this.query(`INSERT INTO audit_events (type, principal, addr, detail, at) VALUES ${tuples.join(', ')}`, values);
    }
  }

  async listAudit(filter: AuditFilter = {}): Promise<AuditEvent[]> {
    const values: unknown[] = [filter.limit ?? DEFAULT_AUDIT_LIST];
    let where = '';
    if (filter.type !== undefined) {
      values.push(filter.type);
      where = 'WHERE type = $2';
    }
    const { rows } = await this.query<{ type: string; principal: string | null; addr: string; detail: Record<string, unknown>; at: Date }>(
      `SELECT type, principal, addr, detail, at FROM (
         SELECT id, type, principal, addr, detail, at FROM audit_events ${where} ORDER BY id DESC LIMIT $1
       ) newest ORDER BY id`, values);
    return rows.map((r) => ({ type: r.type, principal: r.principal, addr: r.addr, detail: r.detail, at: r.at.getTime() }));
  }

  async createLink(l: ShareLink): Promise<void> {
    try {
      await this.query(
        `INSERT INTO share_links (id, sid, role, created_by, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [l.id, l.sid, l.role, l.createdBy, new Date(l.createdAt), new Date(l.expiresAt), l.revokedAt === null ? null : new Date(l.revokedAt)],
      );
    } catch (err) {
      if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) throw new SwitchboardError('conflict', `link ${l.id} exists already`, { cause: err });
      throw err;
    }
  }

  async getLink(id: string): Promise<ShareLink | null> {
    const { rows } = await this.query<LinkRow>('SELECT id, sid, role, created_by, created_at, expires_at, revoked_at FROM share_links WHERE id = $1', [id]);
    return rows[0] ? toLink(rows[0]) : null;
  }

  async listLinks(sid: SessionId): Promise<ShareLink[]> {
    const { rows } = await this.query<LinkRow>(
      'SELECT id, sid, role, created_by, created_at, expires_at, revoked_at FROM share_links WHERE sid = $1 ORDER BY created_at, id', [sid]);
    return rows.map(toLink);
  }

  async revokeLink(sid: SessionId, id: string, at: number): Promise<boolean> {
    const result = await this.query('UPDATE share_links SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND sid = $2', [id, sid, new Date(at)]);
    return (result.rowCount ?? 0) > 0;
  }

  async inactiveLinks(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.query<{ id: string }>(
      'SELECT id FROM share_links WHERE id = ANY($1::text[]) AND revoked_at IS NULL', [ids]);
    const active = new Set(rows.map((r) => r.id));
    return ids.filter((id) => !active.has(id));
  }

  async listEvents(sid: SessionId): Promise<SessionEvent[]> {
    const { rows } = await this.query<{ sid: string; epoch: string; type: string; detail: Record<string, unknown>; at: Date }>(
      'SELECT sid, epoch, type, detail, at FROM session_events WHERE sid = $1 ORDER BY id', [sid]);
    return rows.map((r) => ({ sid: r.sid, epoch: Number(r.epoch), type: r.type, detail: r.detail, at: r.at.getTime() }));
  }

  async archive(sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array): Promise<void> {
    await this.archiveBatch([{ sid, epoch, off, data }]);
  }

  /**
   * Inserts the rows whose session exists with an epoch <= the row's, skipping offsets
   * already stored (a retried flush). `FOR SHARE` makes a concurrent epoch bump either
   * wait for this insert or be seen by it, never slip between check and write.
   */
  async archiveBatch(rows: readonly ArchiveRow[]): Promise<void> {
    const split: ArchiveRow[] = [];
    for (const r of rows) {
      for (let at = 0; at < r.data.length; at += MAX_ARCHIVE_ROW_BYTES) {
        split.push({ ...r, off: r.off + at, data: r.data.subarray(at, at + MAX_ARCHIVE_ROW_BYTES) });
      }
    }
    for (let at = 0; at < split.length; at += MAX_ARCHIVE_ROWS_PER_STATEMENT) {
      const batch = split.slice(at, at + MAX_ARCHIVE_ROWS_PER_STATEMENT);
      const values: unknown[] = [];
      const tuples = batch.map((r) => {
        values.push(r.sid, r.epoch, r.off, toBuffer(r.data));
        const n = values.length;
        return `($${n - 3}::text, $${n - 2}::bigint, $${n - 1}::bigint, $${n}::bytea)`;
      });
      await this.query(
        `INSERT INTO session_output (sid, off, data)
         SELECT v.sid, v.off, v.data
         FROM (VALUES ${tuples.join(', ')}) AS v (sid, epoch, off, data)
         JOIN sessions s ON s.sid = v.sid AND s.epoch <= v.epoch
         FOR SHARE OF s
         ON CONFLICT (sid, off) DO NOTHING`,
        values,
      );
    }
  }

  /**
   * Chunks from the first archived byte at or after `from` (sliced exactly at `from`),
   * contiguous, about `maxBytes`. A hole in the archive (bytes a write-behind writer had
   * to drop) ends the run: the next read from there starts after the hole, so the first
   * chunk's `off` > `from` tells the caller bytes are missing.
   */
  async archivedHeads(sids: readonly SessionId[]): Promise<Map<SessionId, Offset>> {
    if (sids.length === 0) return new Map();
    // One index probe per session (the last row by offset), in one statement.
    const { rows } = await this.query<{ sid: string; end: string | null }>(
      `SELECT v.sid, (SELECT o.off + octet_length(o.data) FROM session_output o WHERE o.sid = v.sid ORDER BY o.off DESC LIMIT 1) AS end
       FROM unnest($1::text[]) AS v(sid)`, [sids]);
    return new Map(rows.map((r) => [r.sid, r.end === null ? 0 : Number(r.end)]));
  }

  async moveSessions(moves: ReadonlyArray<{ sid: SessionId; epoch: Epoch }>, node: NodeId): Promise<Set<SessionId>> {
    if (moves.length === 0) return new Set();
    const { rows } = await this.query<{ sid: string }>(
      `UPDATE sessions s SET epoch = v.epoch, node = $3, status = 'running'
       FROM unnest($1::text[], $2::bigint[]) AS v(sid, epoch)
       WHERE s.sid = v.sid AND s.epoch <= v.epoch
       RETURNING s.sid`,
      [moves.map((m) => m.sid), moves.map((m) => m.epoch), node]);
    return new Set(rows.map((r) => r.sid));
  }

  async archivedHead(sid: SessionId): Promise<Offset> {
    // The last row by offset (an index scan backwards on (sid, off)).
    const { rows } = await this.query<{ end: string }>(
      'SELECT off + octet_length(data) AS end FROM session_output WHERE sid = $1 ORDER BY off DESC LIMIT 1', [sid]);
    return rows.length === 0 ? 0 : Number(rows[0]!.end);
  }

  async deleteEnded(before: number, limit: number): Promise<number> {
    // One statement: pick the victims (SKIP LOCKED: nodes running this together take
    // different rows), then their archive, events and links, then the rows themselves.
    // ended_activity is an ended session's last_activity, NULL while it runs (kept by
    // triggers: migrations/008), so touches of running sessions change no indexed column.
    const { rows } = await this.query<{ n: string }>(
      `WITH victims AS (
         SELECT sid FROM sessions
         WHERE ended_activity < $1
         ORDER BY ended_activity LIMIT $2 FOR UPDATE SKIP LOCKED
       ), o AS (DELETE FROM session_output WHERE sid IN (SELECT sid FROM victims)),
       e AS (DELETE FROM session_events WHERE sid IN (SELECT sid FROM victims)),
       l AS (DELETE FROM share_links WHERE sid IN (SELECT sid FROM victims)),
       s AS (DELETE FROM sessions WHERE sid IN (SELECT sid FROM victims) RETURNING 1)
       SELECT count(*) AS n FROM s`,
      [new Date(before), Math.max(1, limit)],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async readArchive(sid: SessionId, from: Offset, maxBytes: number): Promise<LogChunk[]> {
    // Rows are at most MAX_ARCHIVE_ROW_BYTES long, so the row holding `from` starts less
    // than that before it: both steps are index range scans on (sid, off). First the
    // lowest row that ends past `from`, then the rows up to maxBytes past the start.
    const { rows } = await this.query<{ off: string; data: Buffer }>(
      `WITH first AS (
         SELECT min(off) AS off FROM session_output
         WHERE sid = $1 AND off > $2::bigint - $4::bigint AND off + octet_length(data) > $2::bigint
       )
       SELECT o.off, o.data FROM session_output o, first
       WHERE o.sid = $1 AND o.off >= first.off AND o.off < GREATEST($2::bigint, first.off) + $3::bigint
       ORDER BY o.off`,
      [sid, from, Math.max(1, maxBytes), MAX_ARCHIVE_ROW_BYTES],
    );
    // Make the rows one contiguous run from `from`: skip bytes stored twice (overlapping
    // writes), stop at the first hole.
    const run: LogChunk[] = [];
    let head = -1;
    for (const row of rows) {
      const off = Number(row.off);
      const end = off + row.data.length;
      if (end <= from) continue;
      if (head === -1) {
        run.push({ off, data: row.data });
        head = end;
      } else if (off > head) {
        break;
      } else if (end > head) {
        run.push({ off: head, data: row.data.subarray(head - off) });
        head = end;
      }
    }
    if (run.length === 0) return [];
    return sliceChunks(run, run[0]!.off, head, from, maxBytes).chunks;
  }

  isHealthy(): boolean {
    return this.healthy;
  }

  /** The error that made the store unhealthy, for logs and readiness output. */
  get lastError(): unknown {
    return this.healthy ? undefined : this.lastFailure;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pool.off('error', this.onPoolError);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  /**
   * The count and the insert run under a transaction-scoped advisory lock on the owner,
   * in statements after it: under READ COMMITTED each sees what earlier holders
   * committed, so opens racing on several nodes are counted one after another.
   */
  async reserveSession(owner: string, id: string, max: number, expiresAt: number, now: number): Promise<Reservation> {
    return this.transaction(async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('switchboard.sessions-per-principal:' || $1, 0))`, [owner]);
      await client.query('DELETE FROM session_reservations WHERE owner = $1 AND expires_at <= $2', [owner, new Date(now)]);
      const { rows } = await client.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM sessions WHERE owner = $1 AND status IN ('starting', 'running'))
              + (SELECT count(*) FROM session_reservations r WHERE r.owner = $1
                   AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = r.id)) AS n`,
        [owner],
      );
      const count = Number(rows[0]!.n);
      if (count >= max) return { ok: false, count };
      // Two opens naming the same sid share a place (only one can create it): no error.
      await client.query('INSERT INTO session_reservations (id, owner, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [id, owner, new Date(expiresAt)]);
      return { ok: true, count };
    });
  }

  async releaseReservation(id: string): Promise<void> {
    await this.query('DELETE FROM session_reservations WHERE id = $1', [id]);
  }

  /** `fn` inside BEGIN … COMMIT on one pooled connection; ROLLBACK on any error. */
  private async transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.markFailed(err);
      throw err;
    }
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      this.markOk();
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr;
      });
      if (isDatabaseUnreachable(err)) this.markFailed(err);
      throw err;
    } finally {
      // A connection whose ROLLBACK failed is not given back to the pool for reuse.
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  private async query<R extends QueryResultRow = QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> {
    try {
      const result = await this.pool.query<R>(text, values);
      this.markOk();
      return result;
    } catch (err) {
      if (isDatabaseUnreachable(err)) this.markFailed(err);
      else this.markOk();
      throw err;
    }
  }

  private markOk(): void {
    this.healthy = true;
    this.lastFailure = undefined;
  }

  private markFailed(err: unknown): void {
    this.healthy = false;
    this.lastFailure = err;
    this.scheduleProbe();
  }

  /** While unhealthy, `SELECT 1` now and then, so health recovers without traffic. */
  private scheduleProbe(): void {
    if (this.closed || this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.closed || this.healthy) return;
      this.query('SELECT 1', []).catch(() => this.scheduleProbe());
    }, this.probeIntervalMs);
    this.probeTimer.unref();
  }
}
