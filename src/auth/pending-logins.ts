/**
 * PendingLogins: sign-ins begun (GET /auth/login) and not yet completed, keyed by their
 * OAuth `state`, so the callback may arrive at any node:
 *
 *   browser ──/auth/login──▶ node A ──put(state, {nonce, verifier, …}, 10 min)──▶ Redis
 *   browser ◀──302 provider──┘
 *   browser ──/auth/callback?state&code──▶ node B ──take(state)──▶ Redis (GETDEL)
 *
 * Contract (test/contract/pending-logins.ts):
 * - `put` keeps a login under its state for `ttlMs`; after that it is gone.
 * - `take` returns the login and removes it in one step: of any number of callers
 *   racing for one state, on any nodes, at most one gets it (a callback replayed, or
 *   raced, finds nothing). Unknown, expired and taken states all answer null.
 * - Memory: one node only (the embedded default), bounded (the oldest go first past
 *   `maxEntries`). Redis: every node sees every login; one key per state.
 */

/** What the callback needs of the login it completes. Secrets stay server-side. */
export interface PendingLogin {
  /** The OIDC nonce the ID token must carry. */
  nonce: string;
  /** The PKCE code verifier (the provider saw only its S256 challenge). */
  verifier: string;
  /** The same-origin path to send the browser to once signed in. */
  returnTo: string;
  /** The redirect_uri the authorization request named (the token request repeats it). */
  redirectUri: string;
  /** SHA-256 of the browser's login binding cookie: the callback must come from the browser that began. */
  binding: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

export interface PendingLogins {
  put(state: string, login: PendingLogin, ttlMs: number): Promise<void>;
  take(state: string): Promise<PendingLogin | null>;
  close(): Promise<void>;
}

/** Decodes a stored login; anything else (a foreign or corrupt value) is no login. */
export function parsePendingLogin(raw: string | null): PendingLogin | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as Partial<PendingLogin>;
    const strings = [v.nonce, v.verifier, v.returnTo, v.redirectUri, v.binding];
    if (strings.every((s) => typeof s === 'string') && typeof v.createdAt === 'number') return v as PendingLogin;
  } catch {
    // answered below
  }
  return null;
}
