/**
 * What the edge asks beyond the pure checks of principal.ts: the per-principal limits
 * and the audit trail. The server hands the edge one (Edge.useAccess); without it the
 * edge limits nobody and records nothing (unit tests, tools that drive an Edge alone).
 */
import type { Epoch, SessionId } from '../util/ids.js';
import type { Auditor, SessionAuditType } from './audit.js';
import type { Principal } from './principal.js';
import type { Admission, PrincipalLimits } from './principal-limits.js';

export interface SessionAccess {
  /**
   * Rejects `rate_limited` when the principal may not open a session now; else holds
   * its place under the session cap until the caller releases it (placement answered).
   * `sid`: the session the open means to create (its record replaces the place).
   */
  admitOpen(p: Principal, sid: SessionId): Promise<Admission>;
  /** undefined: admitted now; else a promise that resolves when admitted or rejects `rate_limited`. */
  admitInput(p: Principal, bytes: number): Promise<void> | undefined;
  audit(type: SessionAuditType, sid: SessionId, epoch: Epoch, p: Principal, addr: string, detail?: Record<string, unknown>): void;
}

export const UNCHECKED_ACCESS: SessionAccess = Object.freeze({
  admitOpen: async () => ({ release: async () => {} }),
  admitInput: () => undefined,
  audit: () => {},
});

export function sessionAccess(limits: PrincipalLimits, auditor: Auditor): SessionAccess {
  return {
    admitOpen: (p, sid) => limits.admitOpen(p, sid),
    admitInput: (p, bytes) => limits.admitInput(p, bytes),
    audit: (type, sid, epoch, p, addr, detail) => auditor.session(type, sid, epoch, p, addr, detail),
  };
}
