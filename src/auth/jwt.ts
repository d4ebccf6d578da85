/**
 * User JWTs: HS256 with a shared secret, and/or any asymmetric algorithm with keys from
 * a JSON Web Key Set URL. The token's header `alg` picks the key: an HS* token is checked
 * only against the secret, any other only against the key set, so a public key can
 * never be used as an HMAC secret (the classic algorithm confusion).
 *
 * Claims: `sub` (required: the principal), `exp` (required), `role` (`admin` or `user`,
 * default `user`), and `iss` / `aud` when configured.
 *
 * The key set is fetched on first use, cached (jose: fresh for 10 minutes), and fetched
 * again when a token names a `kid` it does not hold (rotation), at most once per
 * cooldown (30 s by default).
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWSAlgorithm, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { ADMIN_NAME, LINK_PREFIX, type Principal } from './principal.js';

/** Asymmetric algorithms a key set may sign with. */
const ASYMMETRIC: JWSAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
export const MAX_SUBJECT_LENGTH = 256;
/** Seconds of clock difference tolerated on `exp` and `nbf`. */
const CLOCK_TOLERANCE_S = 5;

export interface JwtOptions {
  secret?: string | undefined;
  jwksUrl?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  /** After a key set fetch, how long an unknown `kid` waits before another (jose's cooldown). */
  jwksCooldownMs?: number;
}

/** A credential that is not (or no longer) valid: the client's fault, a failed login. */
export class InvalidCredential extends Error {
  override name = 'InvalidCredential';
}

/** The key set could not be fetched: not the client's fault, and not a failed login. */
export class KeySetUnavailable extends Error {
  override name = 'KeySetUnavailable';
}

/** The header `typ` of share link tokens (src/auth/links.ts): never a user JWT. */
export const LINK_TOKEN_TYPE = 'sb-link+jwt';

/** Three base64url parts: worth decoding as a JWT at all. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

/** The header's `typ`, or undefined when the token is not a decodable JWT. */
export function tokenType(token: string): string | undefined {
  if (!looksLikeJwt(token)) return undefined;
  try {
    return decodeProtectedHeader(token).typ;
  } catch {
    return undefined;
  }
}

export class JwtVerifier {
  private readonly secret: Uint8Array | undefined;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  private readonly claims: JWTVerifyOptions;

  constructor(options: JwtOptions) {
    this.secret = options.secret === undefined ? undefined : new TextEncoder().encode(options.secret);
    this.jwks = options.jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(options.jwksUrl), {
      ...(options.jwksCooldownMs !== undefined ? { cooldownDuration: options.jwksCooldownMs } : {}),
    });
    this.claims = {
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_S,
      ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
      ...(options.audience !== undefined ? { audience: options.audience } : {}),
    };
  }

  get enabled(): boolean {
    return this.secret !== undefined || this.jwks !== undefined;
  }

  /** The principal a valid token names; InvalidCredential or KeySetUnavailable otherwise. */
  async verify(token: string): Promise<Principal> {
    if (!looksLikeJwt(token)) throw new InvalidCredential('not the admin token, and not a JWT');
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new InvalidCredential('malformed JWT header');
    }
    let payload: JWTPayload;
    try {
      if (alg?.startsWith('HS')) {
        if (!this.secret) throw new InvalidCredential(`an ${alg} JWT, but no SWITCHBOARD_JWT_SECRET is set`);
        ({ payload } = await jwtVerify(token, this.secret, { ...this.claims, algorithms: ['HS256'] }));
      } else {
        if (!this.jwks) throw new InvalidCredential(`an ${alg ?? 'unsigned'} JWT, but no SWITCHBOARD_JWKS_URL is set`);
        ({ payload } = await jwtVerify(token, this.jwks, { ...this.claims, algorithms: ASYMMETRIC }));
      }
    } catch (err) {
      throw classify(err);
    }
    return principalOf(payload);
  }
}

/** jose's errors: the token's fault (invalid) or the key set's (unavailable). */
function classify(err: unknown): Error {
  if (err instanceof InvalidCredential) return err;
  if (err instanceof errors.JWTExpired) return new InvalidCredential('JWT expired');
  if (err instanceof errors.JWTClaimValidationFailed) return new InvalidCredential(`JWT claim ${err.claim} ${err.reason}`);
  if (err instanceof errors.JWKSNoMatchingKey) return new InvalidCredential('JWT signed with a key the key set does not hold');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new InvalidCredential('JWT signature does not verify');
  if (err instanceof errors.JOSEAlgNotAllowed) return new InvalidCredential('JWT algorithm not allowed');
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid || err instanceof errors.JOSENotSupported) {
    return new InvalidCredential(`malformed JWT: ${err.message}`);
  }
  // Timeouts, fetch failures, a key set that is not JSON: the issuer's side.
  return new KeySetUnavailable(`the JWT key set could not be fetched: ${err instanceof Error ? err.message : String(err)}`);
}

/** The principal of verified claims; claims we cannot honour make the token invalid. */
export function principalOf(payload: JWTPayload): Principal {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '' || sub.length > MAX_SUBJECT_LENGTH) {
    throw new InvalidCredential(`JWT sub must be 1-${MAX_SUBJECT_LENGTH} characters`);
  }
  if (/[\u0000-\u001f\u007f]/.test(sub)) throw new InvalidCredential('JWT sub must not contain control characters');
  const role = payload.role ?? 'user';
  if (role !== 'admin' && role !== 'user') throw new InvalidCredential('JWT role must be admin or user');
  if (sub.startsWith(LINK_PREFIX)) throw new InvalidCredential(`JWT sub must not start with ${LINK_PREFIX} (reserved for share links)`);
  // The admin token's sessions are owned by `admin`: a user of that name would see them.
  if (sub === ADMIN_NAME && role !== 'admin') throw new InvalidCredential(`JWT sub ${ADMIN_NAME} is reserved for the admin token (or a JWT with role admin)`);
  return { name: sub, admin: role === 'admin', credential: 'jwt', ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
}
