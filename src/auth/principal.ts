/**
 * Who a request speaks for, and what each kind may do with a session. Pure functions:
 * the edge (WebSocket frames) and the server (HTTP routes) ask the same questions here.
 *
 *   credential            principal name      may
 *   admin token           `admin`             everything
 *   JWT, role admin       its `sub`           everything
 *   JWT, role user        its `sub`           open; list, attach to, type into, kill, share its own sessions
 *   share link            `link:<id>`         attach to its one session, with at most its role
 *   OIDC sign-in          its `sub`           as a JWT of role user, or admin when mapped
 *                                             (SWITCHBOARD_OIDC_ADMIN_SUBJECTS / _CLAIM)
 *
 * A session that is not the principal's is answered `not_found`, never `forbidden`:
 * whether a sid exists is itself worth hiding.
 */
import { SwitchboardError } from '../errors/errors.js';
import type { Role } from '../protocol/frames.js';
import type { SessionId } from '../util/ids.js';

/** The name sessions opened with the static admin token (or with auth off) are owned by. */
export const ADMIN_NAME = 'admin';
/** Prefix of a share link principal's name; reserved, no JWT `sub` may start with it. */
export const LINK_PREFIX = 'link:';

export type LinkId = string;

/** What a share link allows: one session, one role, until it expires or is revoked. */
export interface LinkScope {
  id: LinkId;
  sid: SessionId;
  role: Role;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** The principal that minted it. */
  by: string;
}

export type CredentialKind = 'token' | 'jwt' | 'link' | 'oidc' | 'none';

export interface Principal {
  /** Owner name of the sessions it opens: `admin`, a JWT's `sub`, `link:<id>`. */
  name: string;
  admin: boolean;
  credential: CredentialKind;
  /** Set for share links only. */
  link?: LinkScope;
  /**
   * When the credential stops being valid (milliseconds since the epoch): a JWT's
   * `exp`, a sign-in session's. A socket opened with it is closed then. Undefined:
   * never (the admin token).
   */
  expiresAt?: number;
}

export const ADMIN: Readonly<Principal> = Object.freeze({ name: ADMIN_NAME, admin: true, credential: 'token' });
/** Everyone, with authentication off (loopback only). */
export const ANONYMOUS_ADMIN: Readonly<Principal> = Object.freeze({ name: ADMIN_NAME, admin: true, credential: 'none' });

/** The owner fields of a session record this module looks at. */
export interface Owned {
  sid: SessionId;
  owner: string;
}

const notFound = (sid: SessionId): SwitchboardError => new SwitchboardError('not_found', `no session ${sid}`);

/** Whether `p` may know the session exists at all (list it, attach to it). */
export function canSee(p: Principal, s: Owned): boolean {
  if (p.link) return p.link.sid === s.sid;
  return p.admin || s.owner === p.name;
}

/** Opening sessions: any principal but a share link. */
export function checkOpen(p: Principal): void {
  if (p.link) throw new SwitchboardError('forbidden', 'a share link can only attach to the session it was made for; it cannot open sessions');
}

/** Listing sessions: any principal but a share link (which knows its one sid already). */
export function checkList(p: Principal): void {
  if (p.link) throw new SwitchboardError('forbidden', 'a share link can only attach to the session it was made for; it cannot list sessions');
}

/**
 * Attaching as `role`: the session must be visible; a viewer link cannot attach as
 * writer, and an expired link not at all (its socket is closed soon anyway).
 */
export function checkAttach(p: Principal, s: Owned, role: Role, now = Date.now()): void {
  if (!canSee(p, s)) throw notFound(s.sid);
  if (p.link && p.link.expiresAt <= now) throw new SwitchboardError('unauthorized', 'this share link has expired; ask for a new one');
  if (p.link && p.link.role === 'viewer' && role !== 'viewer') {
    throw new SwitchboardError('forbidden', 'this share link is for viewing: attach with role viewer');
  }
}

/** Killing: the owner or an admin; a share link never. */
export function checkKill(p: Principal, s: Owned): void {
  if (!canSee(p, s)) throw notFound(s.sid);
  if (p.link) throw new SwitchboardError('forbidden', 'a share link cannot kill the session; ask its owner');
}

/** Minting, listing and revoking share links: the owner or an admin. */
export function checkShare(p: Principal, s: Owned): void {
  if (!canSee(p, s)) throw notFound(s.sid);
  if (p.link) throw new SwitchboardError('forbidden', 'a share link cannot make or see other links');
}

export function checkAdmin(p: Principal): void {
  if (!p.admin) throw new SwitchboardError('forbidden', 'this route is for administrators');
}

/** Per-principal limits apply to everyone but administrators (docs/security.md). */
export function isLimited(p: Principal): boolean {
  return !p.admin;
}
