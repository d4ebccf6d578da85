/**
 * Share links: a signed credential scoped to one session, one role, one expiry.
 *
 * A link token is a JWT (HS256, header `typ: sb-link+jwt`) with claims `sid`, `role`,
 * `by` (who minted it), `jti` (the link id) and `exp`. Its key is derived from the
 * cluster's secret, SWITCHBOARD_JWT_SECRET or, without one, SWITCHBOARD_TOKEN:
 *
 *   link key = HMAC-SHA256(secret, "switchboard share link key v1")
 *
 * so a link token never verifies as a user JWT (another key) and a user JWT never as a
 * link, even though both are HS256 under the same configured secret. Every node of a
 * cluster has the same secret, so every node verifies every link; changing the secret
 * invalidates every link at once.
 *
 * The signature proves who minted the link; the Store says whether it still stands
 * (revocation: a row per link, revoked_at set by DELETE, seen by every node).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import type { Role } from '../protocol/frames.js';
import { isSessionId, type SessionId } from '../util/ids.js';
import { InvalidCredential, LINK_TOKEN_TYPE } from './jwt.js';
import type { LinkId, LinkScope } from './principal.js';

const KEY_LABEL = 'switchboard share link key v1';
const LINK_ID = /^[A-Za-z0-9_-]{16,64}$/;

export function newLinkId(): LinkId {
  return randomBytes(16).toString('base64url');
}

export function isLinkId(value: unknown): value is LinkId {
  return typeof value === 'string' && LINK_ID.test(value);
}

export class LinkSigner {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = createHmac('sha256', secret).update(KEY_LABEL).digest();
  }

  /** A token for `scope`; its `exp` is `scope.expiresAt` rounded down to the second. */
  async mint(scope: LinkScope): Promise<string> {
    return new SignJWT({ sid: scope.sid, role: scope.role, by: scope.by })
      .setProtectedHeader({ alg: 'HS256', typ: LINK_TOKEN_TYPE })
      .setJti(scope.id)
      .setIssuedAt()
      .setExpirationTime(Math.floor(scope.expiresAt / 1000))
      .sign(this.key);
  }

  /** The scope of a valid, unexpired link token; InvalidCredential otherwise. Revocation is the caller's. */
  async verify(token: string): Promise<LinkScope> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], typ: LINK_TOKEN_TYPE, requiredClaims: ['exp', 'jti'] }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new InvalidCredential('share link expired');
      throw new InvalidCredential('share link does not verify (another cluster secret, or tampered with)');
    }
    const { sid, role, jti, by, exp } = payload;
    if (!isSessionId(sid) || (role !== 'viewer' && role !== 'writer') || !isLinkId(jti) || typeof by !== 'string' || typeof exp !== 'number') {
      throw new InvalidCredential('share link claims are malformed');
    }
    return { id: jti, sid: sid as SessionId, role: role as Role, by, expiresAt: exp * 1000 };
  }
}
