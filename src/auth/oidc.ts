/**
 * Sign-in with an OpenID Connect provider: the authorization code flow with PKCE
 * (S256), state and nonce, through openid-client. The routes are src/edge/auth-routes.ts.
 *
 *   GET /auth/login ──▶ begin(): state, nonce, verifier ──put──▶ PendingLogins (10 min)
 *        ◀── 302 to the provider (code_challenge, state, nonce) + a binding cookie
 *   provider: the user signs in
 *   GET /auth/callback?code&state (any node) ──▶ complete(): take(state) once, the same
 *        browser (binding cookie), code + verifier ──▶ token endpoint; the ID token's
 *        signature, iss, aud, exp, nonce checked ──▶ `sub` is the principal
 *
 * The binding cookie ties the callback to the browser that began: without it, someone
 * could begin a sign-in as themselves and have a victim's browser complete it (login
 * CSRF), leaving the victim typing into the attacker's sessions.
 *
 * The provider's metadata is discovered on first use and kept; a provider that cannot
 * be reached makes that sign-in `unavailable` and the next one discovers again.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as client from 'openid-client';
import { SwitchboardError, toSwitchboardError } from '../errors/errors.js';
import { MAX_SUBJECT_LENGTH } from './jwt.js';
import type { PendingLogins } from './pending-logins.js';
import { ADMIN_NAME, LINK_PREFIX } from './principal.js';
import type { SignedIn } from './session-cookie.js';

/** How long a begun sign-in may take to come back. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** The cookie that ties a callback to the browser that began the sign-in. */
export const LOGIN_BINDING_COOKIE = 'sb_login';
/** Seconds a discovery or token request may take. */
const PROVIDER_TIMEOUT_S = 10;
/** openid-client's states are 32 random bytes, base64url: 43 characters. */
const STATE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;
/** Longest `return` path kept; longer ones fall back to `/`. */
const MAX_RETURN_LENGTH = 2048;

export interface OidcOptions {
  issuer: string;
  clientId: string;
  /** Undefined: a public client (no client authentication; PKCE carries the proof). */
  clientSecret?: string | undefined;
  /** Space-separated, including `openid`. */
  scopes: string;
  adminSubjects: readonly string[];
  adminClaim?: { name: string; value: string } | undefined;
}

/**
 * A `return` parameter as a path on this gateway, or `/`. Only an absolute path
 * (`/…`) resolving to our own origin is kept: `//evil.example`, `/\evil.example`,
 * `https://…`, `javascript:` and control characters all fall back to `/`, so the
 * sign-in can never redirect off-site (an open redirect).
 */
export function safeReturnPath(raw: string | null | undefined): string {
  if (raw === null || raw === undefined || raw === '' || raw.length > MAX_RETURN_LENGTH) return '/';
  if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\')) return '/';
  if (/[\u0000-\u001f\u007f\\]/.test(raw)) return '/';
  const base = 'http://gateway.invalid';
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    return '/';
  }
  if (url.origin !== base) return '/';
  // Never back into the sign-in routes themselves (a loop).
  if (url.pathname.startsWith('/auth/')) return '/';
  return url.pathname + url.search + url.hash;
}

/** The redirect_uri: configured, else the public URL's, else this request's Host's. */
export function redirectUriFor(configured: string | undefined, publicUrl: string | undefined, host: string): string {
  if (configured !== undefined) return configured;
  return `${publicUrl ?? `http://${host}`}/auth/callback`;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url');

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const stateInvalid = (why: string): SwitchboardError =>
  new SwitchboardError('login_state_invalid', `this sign-in ${why}; sign in again from the page`);

export class OidcLogin {
  private configuration: Promise<client.Configuration> | undefined;

  constructor(private readonly options: OidcOptions, private readonly pending: PendingLogins) {}

  /** Starts a sign-in: the provider URL to send the browser to, and the binding cookie's value. */
  async begin(returnTo: string, redirectUri: string): Promise<{ location: string; binding: string }> {
    const config = await this.discover();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const verifier = client.randomPKCECodeVerifier();
    const binding = randomBytes(32).toString('base64url');
    try {
      await this.pending.put(state, { nonce, verifier, returnTo, redirectUri, binding: sha256(binding), createdAt: Date.now() }, LOGIN_TTL_MS);
    } catch (err) {
      throw unreachable('the pending sign-in store (Redis)', err);
    }
    const location = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.options.scopes,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    return { location: location.href, binding };
  }

  /**
   * Completes a sign-in from the callback's query and the browser's binding cookie.
   * The state is taken (used up) before anything else is checked, so a callback can
   * be tried once: a provider error, a bad code or a replay all leave nothing to retry.
   */
  async complete(query: URLSearchParams, binding: string | undefined): Promise<{ who: SignedIn; returnTo: string }> {
    const state = query.get('state');
    if (state === null || !STATE_PATTERN.test(state)) throw stateInvalid('has no valid state parameter');
    let pending;
    try {
      pending = await this.pending.take(state);
    } catch (err) {
      throw unreachable('the pending sign-in store (Redis)', err);
    }
    if (!pending) throw stateInvalid('is unknown, expired (10 minutes) or already used');
    if (binding === undefined || !sameDigest(sha256(binding), pending.binding)) throw stateInvalid('was started in another browser (or its cookie was lost)');
    const error = query.get('error');
    if (error !== null) {
      const description = query.get('error_description');
      throw new SwitchboardError('login_failed', `the identity provider refused the sign-in: ${printable(error)}${description ? ` (${printable(description)})` : ''}`);
    }
    const config = await this.discover();
    // The callback URL as the provider built it: our redirect_uri plus its parameters.
    const current = new URL(pending.redirectUri);
    for (const [k, v] of query) current.searchParams.append(k, v);
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: pending.verifier, expectedState: state, expectedNonce: pending.nonce, idTokenExpected: true,
      });
    } catch (err) {
      throw providerError(err);
    }
    const claims = tokens.claims();
    if (!claims) throw new SwitchboardError('login_failed', 'the identity provider returned no ID token');
    return { who: this.signedIn(claims), returnTo: pending.returnTo };
  }

  /** The principal an ID token's verified claims name. */
  signedIn(claims: Record<string, unknown>): SignedIn {
    const sub = claims.sub;
    if (typeof sub !== 'string' || sub === '' || sub.length > MAX_SUBJECT_LENGTH || /[\u0000-\u001f\u007f]/.test(sub)) {
      throw new SwitchboardError('login_failed', `the ID token's sub must be 1-${MAX_SUBJECT_LENGTH} printable characters`);
    }
    if (sub.startsWith(LINK_PREFIX)) throw new SwitchboardError('login_failed', `the ID token's sub must not start with ${LINK_PREFIX} (reserved for share links)`);
    const admin = this.options.adminSubjects.includes(sub) || claimMatches(claims, this.options.adminClaim);
    if (sub === ADMIN_NAME && !admin) throw new SwitchboardError('login_failed', `the ID token's sub ${ADMIN_NAME} is reserved for administrators`);
    return { name: sub, admin };
  }

  private discover(): Promise<client.Configuration> {
    if (!this.configuration) {
      const { issuer, clientId, clientSecret } = this.options;
      const insecure = new URL(issuer).protocol === 'http:'; // config allows it on loopback only
      this.configuration = client.discovery(
        new URL(issuer), clientId, clientSecret,
        clientSecret === undefined ? client.None() : client.ClientSecretBasic(clientSecret),
        { timeout: PROVIDER_TIMEOUT_S, ...(insecure ? { execute: [client.allowInsecureRequests] } : {}) },
      );
      this.configuration.catch(() => {
        this.configuration = undefined;
      });
    }
    return this.configuration.catch((err: unknown) => {
      throw new SwitchboardError('unavailable', `the identity provider (SWITCHBOARD_OIDC_ISSUER) cannot be reached or its discovery document is not valid (${describe(err)}); retry shortly`, { retryMs: 1_000, cause: err });
    });
  }
}

function claimMatches(claims: Record<string, unknown>, match: OidcOptions['adminClaim']): boolean {
  if (!match) return false;
  const v = claims[match.name];
  return v === match.value || (Array.isArray(v) && v.includes(match.value));
}

/** openid-client's errors: the provider's answer was a refusal or did not verify, or it was not reachable. */
function providerError(err: unknown): SwitchboardError {
  if (err instanceof client.AuthorizationResponseError || err instanceof client.ResponseBodyError) {
    return new SwitchboardError('login_failed', `the identity provider refused the sign-in: ${printable(err.error)}${err.error_description ? ` (${printable(err.error_description)})` : ''}`, { cause: err });
  }
  if (err instanceof client.ClientError) {
    const status = (err.cause as { status?: unknown } | undefined)?.status;
    if (typeof status === 'number' && status >= 500) return unreachable('the identity provider', err);
    return new SwitchboardError('login_failed', `the identity provider's answer did not verify: ${err.message}${err.code ? ` (${err.code})` : ''}`, { cause: err });
  }
  return unreachable('the identity provider', err);
}

function unreachable(what: string, err: unknown): SwitchboardError {
  const e = toSwitchboardError(err);
  if (e.code !== 'internal' && e.code !== 'unavailable') return e;
  return new SwitchboardError('unavailable', `${what} did not answer (${describe(err)}); retry shortly`, { retryMs: 1_000, cause: err });
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Provider-supplied text for a message or log line: printable, bounded. */
function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
