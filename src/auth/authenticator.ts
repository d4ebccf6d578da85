/**
 * From a presented credential to a Principal. In order:
 *
 *   the static admin token (constant-time compare)  → admin
 *   a JWT with header typ sb-link+jwt               → a share link (signature, expiry, then
 *                                                     the Store: known and not revoked)
 *   any other JWT                                   → a user (src/auth/jwt.ts)
 *
 * A credential that is not valid is a failed login (the caller counts it); a key set
 * or store that cannot be reached is not (KeySetUnavailable, or the store's error).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.js';
import { InvalidCredential, JwtVerifier, LINK_TOKEN_TYPE, tokenType, type JwtOptions } from './jwt.js';
import { LinkSigner } from './links.js';
import { ADMIN, LINK_PREFIX, type LinkScope, type Principal } from './principal.js';

export type AuthOutcome = { ok: true; principal: Principal } | { ok: false; reason: string };

export interface AuthenticatorOptions {
  /** The static admin token. */
  token: string;
  jwt: JwtOptions;
}

export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class Authenticator {
  readonly jwt: JwtVerifier;
  readonly links: LinkSigner;

  constructor(private readonly options: AuthenticatorOptions, private readonly store: Store) {
    this.jwt = new JwtVerifier(options.jwt);
    // Links are signed with the cluster's JWT secret when there is one, else the token.
    this.links = new LinkSigner(options.jwt.secret ?? options.token);
  }

  async authenticate(token: string): Promise<AuthOutcome> {
    if (tokenMatches(token, this.options.token)) return { ok: true, principal: ADMIN };
    try {
      if (tokenType(token) === LINK_TOKEN_TYPE) return { ok: true, principal: linkPrincipal(await this.verifyLink(token)) };
      if (!this.jwt.enabled) return { ok: false, reason: 'wrong token' };
      return { ok: true, principal: await this.jwt.verify(token) };
    } catch (err) {
      if (err instanceof InvalidCredential) return { ok: false, reason: err.message };
      throw err;
    }
  }

  /** A link token's scope, if it verifies and the Store still has it unrevoked. */
  async verifyLink(token: string): Promise<LinkScope> {
    const scope = await this.links.verify(token);
    const row = await this.store.getLink(scope.id);
    if (!row || row.sid !== scope.sid) throw new InvalidCredential('unknown share link');
    if (row.revokedAt !== null) throw new InvalidCredential('share link revoked');
    return scope;
  }
}

export function linkPrincipal(scope: LinkScope): Principal {
  return { name: LINK_PREFIX + scope.id, admin: false, credential: 'link', link: scope };
}
