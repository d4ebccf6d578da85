/**
 * The audit trail: who did what to which session, from where. Every event goes two
 * ways: one JSON log line (`{"ns":"switchboard:audit","msg":"audit","event":…}`) and a
 * row in the Store: `session_events` for events of a session (open, attach, kill, link
 * minted or revoked), `audit_events` for logins. No credential is ever part of either.
 *
 * Rows are written behind, never on the request's path: at most one write in flight;
 * events arriving meanwhile go out together in the next one, so a burst of logins costs
 * a few multi-row inserts, not one round trip each. While the store fails, events wait
 * (at most `maxQueued`, the oldest dropped beyond it, counted and logged) and the write
 * is retried every `retryMs`. A crash loses what was queued: the log line is out already.
 */
import type { AuditEvent, SessionEvent, Store } from '../store/store.js';
import type { Epoch, SessionId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import type { Principal } from './principal.js';

export type SessionAuditType = 'open' | 'attach' | 'kill' | 'link_mint' | 'link_revoke';
export type LoginVia = 'http' | 'upgrade' | 'page' | 'oidc';

export interface AuditorOptions {
  maxQueued?: number;
  retryMs?: number;
}

const DEFAULT_MAX_QUEUED = 10_000;
const DEFAULT_RETRY_MS = 1_000;
/** Session audit events carry this prefix in `session_events.type` (the host writes the others). */
export const AUDIT_PREFIX = 'audit.';

export class Auditor {
  private events: SessionEvent[] = [];
  private audits: AuditEvent[] = [];
  private writing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly maxQueued: number;
  private readonly retryMs: number;
  private warnedAt = 0;
  /** Events dropped because the queue was full (a metrics counter). */
  dropped = 0;

  constructor(private readonly store: Store, private readonly logger: Logger, options: AuditorOptions = {}) {
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  }

  /** open, attach, kill, link mint/revoke: `session_events` row `audit.<type>` and a log line. */
  session(type: SessionAuditType, sid: SessionId, epoch: Epoch, principal: Principal, addr: string, detail: Record<string, unknown> = {}): void {
    const fields = { principal: principal.name, credential: principal.credential, addr, ...detail };
    this.logger.info('audit', { event: type, sid, ...fields });
    this.events.push({ sid, epoch, type: AUDIT_PREFIX + type, detail: fields, at: Date.now() });
    this.queued();
  }

  /**
   * A login: an `audit_events` row `login` or `login_failed`. Successes get a log line
   * here; failures have theirs from the login guard already (with the same fields).
   */
  login(ok: boolean, via: LoginVia, addr: string, principal: Principal | undefined, detail: Record<string, unknown> = {}): void {
    const fields = { via, ...(principal ? { credential: principal.credential } : {}), ...detail };
    if (ok) this.logger.info('audit', { event: 'login', principal: principal?.name, addr, ...fields });
    this.audits.push({ type: ok ? 'login' : 'login_failed', principal: principal?.name ?? null, addr, detail: fields, at: Date.now() });
    this.queued();
  }

  /** Resolves once everything queued before the call was written (or failed to be). */
  async flush(): Promise<void> {
    while (this.writing || this.events.length + this.audits.length > 0) {
      if (!this.writing) this.write();
      await this.writing;
      if (this.retryTimer) return; // the store is failing: do not spin
    }
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private queued(): void {
    const excess = this.events.length + this.audits.length - this.maxQueued;
    if (excess > 0) {
      // The oldest go first; session events and logins alike.
      const fromAudits = Math.min(excess, this.audits.length);
      this.audits.splice(0, fromAudits);
      this.events.splice(0, excess - fromAudits);
      this.dropped += excess;
      this.warn('audit queue full: dropped the oldest events', { dropped: this.dropped });
    }
    if (!this.writing && !this.retryTimer) this.write();
  }

  private write(): void {
    const events = this.events;
    const audits = this.audits;
    this.events = [];
    this.audits = [];
    this.writing = (async () => {
      try {
        if (events.length > 0) await this.store.appendEvents(events);
      } catch (err) {
        this.events = [...events, ...this.events];
        this.failed(err);
      }
      try {
        if (audits.length > 0) await this.store.appendAudit(audits);
      } catch (err) {
        this.audits = [...audits, ...this.audits];
        this.failed(err);
      }
    })().finally(() => {
      this.writing = undefined;
      if (!this.retryTimer && this.events.length + this.audits.length > 0) this.write();
    });
  }

  private failed(err: unknown): void {
    this.warn('audit write failed; retrying', { err: String(err) });
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.writing && this.events.length + this.audits.length > 0) this.write();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  /** One line per ten seconds at most: an outage must not flood the log. */
  private warn(msg: string, fields: Record<string, unknown>): void {
    if (Date.now() - this.warnedAt < 10_000) return;
    this.warnedAt = Date.now();
    this.logger.warn(msg, fields);
  }
}
