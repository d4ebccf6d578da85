/**
 * The sign-in session cookie an OIDC login leaves in the browser (src/auth/oidc.ts):
 * stateless, so any node accepts a cookie another node set.
 *
 * Its value is a JWT (HS256, header `typ: sb-session+jwt`): `sub` (the principal),
 * `adm` (true for an administrator), `iat`, `exp`, `jti`. The key is derived from
 * SWITCHBOARD_SESSION_SECRET, `HMAC-SHA256(secret, "switchboard session cookie key v1")`,
 * so it never equals a JWT secret or share link key even when an operator reuses a
 * string, and the `typ` keeps a session from passing for a user JWT or a link.
 *
 * The cookie is accepted only as a cookie (page and WebSocket), never in an
 * Authorization header: the HTTP API takes headers alone (docs/security.md, "Browsers").
 *
 *   sb_session=<jwt>; Path=/; HttpOnly; SameSite=Lax; Max-Age=<ttl>[; Secure]
 *
 * Lax, not Strict: the browser arrives from the provider's site at /auth/callback, a
 * cross-site top-level navigation; the WebSocket it opens next is same-site either way.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { InvalidCredential, MAX_SUBJECT_LENGTH } from './jwt.js';
import { ADMIN_NAME, LINK_PREFIX, type Principal } from './principal.js';

export const SESSION_COOKIE = 'sb_session';
export const SESSION_TOKEN_TYPE = 'sb-session+jwt';
const KEY_LABEL = 'switchboard session cookie key v1';

export interface CookieOptions {
  /** Set the Secure attribute: the gateway's public URL is https. */
  secure: boolean;
}

/** A Set-Cookie header value. `maxAgeS` 0 deletes the cookie. */
export function setCookie(name: string, value: string, maxAgeS: number, options: CookieOptions & { path?: string }): string {
  return `${name}=${value}; Path=${options.path ?? '/'}; HttpOnly; SameSite=Lax; Max-Age=${Math.max(0, Math.floor(maxAgeS))}${options.secure ? '; Secure' : ''}`;
}

/** The value of cookie `name` in a Cookie header; undefined when absent. */
export function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

/** Who signed in: the name sessions are owned by, and whether they administer. */
export interface SignedIn {
  name: string;
  admin: boolean;
}

export class SessionCookies {
  private readonly key: Uint8Array;

  constructor(secret: string, readonly ttlMs: number, private readonly now: () => number = Date.now) {
    this.key = createHmac('sha256', secret).update(KEY_LABEL).digest();
  }

  /** A fresh cookie value for `who`, valid for ttlMs (whole seconds). */
  async issue(who: SignedIn): Promise<{ value: string; expiresAt: number }> {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + Math.max(1, Math.floor(this.ttlMs / 1000));
    const value = await new SignJWT(who.admin ? { adm: true } : {})
      .setProtectedHeader({ alg: 'HS256', typ: SESSION_TOKEN_TYPE })
      .setSubject(who.name)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(this.key);
    return { value, expiresAt: exp * 1000 };
  }

  /** The principal a cookie value names; InvalidCredential when forged, altered or expired. */
  async verify(value: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(value, this.key, {
        algorithms: ['HS256'], typ: SESSION_TOKEN_TYPE, requiredClaims: ['sub', 'exp'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) throw new InvalidCredential('sign-in session expired');
      throw new InvalidCredential('sign-in session cookie does not verify');
    }
    const sub = payload.sub!;
    if (sub === '' || sub.length > MAX_SUBJECT_LENGTH || sub.startsWith(LINK_PREFIX)) throw new InvalidCredential('sign-in session names no valid principal');
    const admin = payload.adm === true;
    if (sub === ADMIN_NAME && !admin) throw new InvalidCredential(`sign-in session: ${ADMIN_NAME} is reserved`);
    return { name: sub, admin, credential: 'oidc', expiresAt: payload.exp! * 1000 };
  }

  header(value: string, expiresAt: number, options: CookieOptions): string {
    // Whole seconds up: the browser keeps it no shorter than the value is valid (exp is checked anyway).
    return setCookie(SESSION_COOKIE, value, Math.ceil((expiresAt - this.now()) / 1000), options);
  }
}
