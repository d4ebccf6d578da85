import { timingSafeEqual } from 'node:crypto';

/** Who a request speaks for. One static admin token today; users come with an issuer. */
export interface Principal {
  name: string;
  admin: boolean;
}

export interface Credentials {
  authorization: string;
  protocols: string;
  cookie: string;
}

export const SUBPROTOCOL = 'switchboard.v1';
const BEARER_PROTOCOL = 'bearer.';
export const TOKEN_COOKIE = 'sb_token';

/** The token a request carries: header, then `bearer.` subprotocol, then cookie. */
export function presentedToken(c: Credentials): string | undefined {
  const auth = /^Bearer\s+(\S+)$/i.exec(c.authorization.trim());
  if (auth) return auth[1];
  for (const p of c.protocols.split(',')) {
    const v = p.trim();
    if (v.startsWith(BEARER_PROTOCOL)) return v.slice(BEARER_PROTOCOL.length);
  }
  for (const part of c.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === TOKEN_COOKIE) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Browser origins: the page's own origin (same host) always; others only if listed;
 * `*` allows any. Requests without Origin are not from a browser and pass.
 */
export function originAllowed(origin: string, host: string, allowed: readonly string[]): boolean {
  if (origin === '') return true;
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** The subprotocol we answer with: ours when the client offered it. */
export function chosenProtocol(protocols: string): string {
  return protocols.split(',').some((p) => p.trim() === SUBPROTOCOL) ? SUBPROTOCOL : '';
}
