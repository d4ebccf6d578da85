/**
 * Where credentials travel and the browser rules around them. What a credential is
 * worth (admin token, user JWT, share link) is src/auth/.
 */
export type { Principal } from '../auth/principal.js';

export interface Credentials {
  authorization: string;
  protocols: string;
  cookie: string;
}

export const SUBPROTOCOL = 'switchboard.v1';
const BEARER_PROTOCOL = 'bearer.';
export const TOKEN_COOKIE = 'sb_token';

/**
 * The token of an `Authorization: Bearer` header. The HTTP API takes credentials only
 * this way: a browser attaches a cookie to any request, a cross-site form's too, but
 * never an Authorization header another site wrote.
 */
export function bearerToken(authorization: string): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(authorization.trim())?.[1];
}

/**
 * The token a WebSocket upgrade or page request carries: header, then `bearer.`
 * subprotocol, then cookie (allowed there because the Origin check applies).
 */
export function presentedToken(c: Credentials): string | undefined {
  const auth = bearerToken(c.authorization);
  if (auth !== undefined) return auth;
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

/**
 * With authentication off, only loopback names are served. Otherwise a page on
 * evil.example whose name is made to resolve to 127.0.0.1 (DNS rebinding) is, to the
 * browser, same-origin with us: its Origin equals its Host and every check passes. An
 * IP literal cannot be rebound, and `localhost` is never resolved by a public DNS
 * server in a browser that follows RFC 6761; so the Host must be one of those, on the
 * port we listen on.
 */
export function isLoopbackHost(host: string, port: number): boolean {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d+))?$/i.exec(host.trim());
  if (!m) return false;
  const name = m[1]!.toLowerCase();
  const hostPort = m[2] === undefined ? 80 : Number(m[2]);
  if (hostPort !== port) return false;
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** `application/json`, with or without parameters (`; charset=utf-8`). */
export function isJsonContentType(contentType: string): boolean {
  return contentType.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

/** The subprotocol we answer with: ours when the client offered it. */
export function chosenProtocol(protocols: string): string {
  return protocols.split(',').some((p) => p.trim() === SUBPROTOCOL) ? SUBPROTOCOL : '';
}
