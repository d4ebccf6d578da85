/**
 * The one retry rule of Switchboard's clients (the CLI and the browser page; the load
 * generator measures failures rather than hiding them): what to do when a request is
 * refused, a node says `bye`, or the connection ends.
 *
 *   cause                                          decision
 *   error {temporary: true, retryMs?}               retry, no sooner than retryMs
 *   error {temporary: false}                        give up at once, with the server's message
 *   bye {retryMs}                                   retry (any node), no sooner than retryMs
 *   close 1001, 1011, 1013 (catalog: temporary)     retry
 *   close without a close frame (1005, 1006),
 *     1012, 1014: the network or a proxy            retry
 *   close 1000, 1008, 1009, others                  give up
 *   upgrade refused 429, 502, 503, 504              retry; other statuses give up
 *   unreachable (refused, reset, DNS)               retry
 *
 * A retry waits a jittered, capped exponential backoff, and never less than the
 * server's hint: so a fleet of clients told "1000 ms" does not come back in one step,
 * and one that keeps failing slows down to `maxMs`. Pure: no timers, no I/O.
 * Browser-safe: the page bundles it.
 */
import { CLOSE, HTTP_STATUS, TEMPORARY } from '../errors/errors.js';

/** Why a connection or a request failed, as a client sees it. */
export type RetryCause =
  | { kind: 'error'; code: string; msg: string; temporary?: boolean; retryMs?: number }
  | { kind: 'bye'; reason: string; retryMs: number }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'refused'; status: number; message: string }
  | { kind: 'unreachable'; message: string };

export interface RetryPolicy {
  /** The first retry waits between baseMs / 2 and baseMs; each failure doubles it… */
  baseMs: number;
  /** …up to this. */
  maxMs: number;
  /** A server hint above this is taken as this (a hint, not a reason to wait forever). */
  maxHintMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({ baseMs: 250, maxMs: 15_000, maxHintMs: 60_000 });

export type RetryDecision =
  | { retry: true; delayMs: number; why: string }
  | { retry: false; code: string; message: string };

/** Close codes outside our catalog that mean the transport broke, not that we were refused. */
const TRANSPORT_CLOSES = new Set([1005, 1006, 1012, 1014]);
const TEMPORARY_STATUS = new Set([429, 502, 503, 504]);
/**
 * The wire code of each HTTP status the server answers with (the catalog's table,
 * inverted). Where several codes share a status, the first in the catalog (the
 * general one: 401 is `unauthorized`, not the sign-in page's `login_failed`).
 */
const CODE_OF_STATUS = new Map<number, string>();
for (const [code, status] of Object.entries(HTTP_STATUS)) if (!CODE_OF_STATUS.has(status)) CODE_OF_STATUS.set(status, code);

/** Whether retrying may help, and the server's hint of when, for one cause. */
export function classify(cause: RetryCause): { temporary: boolean; hintMs?: number } {
  switch (cause.kind) {
    case 'error': {
      // `temporary` is always sent by this server; another one's frame falls back to the catalog.
      const temporary = cause.temporary ?? (TEMPORARY as Record<string, boolean | undefined>)[cause.code] ?? false;
      return cause.retryMs === undefined ? { temporary } : { temporary, hintMs: cause.retryMs };
    }
    case 'bye':
      return { temporary: true, hintMs: cause.retryMs };
    case 'close': {
      const known = Object.values(CLOSE).find((c) => c.code === cause.code);
      return { temporary: known ? known.temporary : TRANSPORT_CLOSES.has(cause.code) };
    }
    case 'refused':
      return { temporary: TEMPORARY_STATUS.has(cause.status) };
    case 'unreachable':
      return { temporary: true };
  }
}

/** The user-facing text for a cause: the server's own message where it sent one. */
export function describeCause(cause: RetryCause): string {
  switch (cause.kind) {
    case 'error':
      return `${cause.code}: ${cause.msg}`;
    case 'bye':
      return `the node is ${cause.reason}`;
    case 'close':
      return `connection closed (${cause.code}${cause.reason ? ` ${cause.reason}` : ''})`;
    case 'refused':
      return `HTTP ${cause.status}${cause.message ? `: ${cause.message}` : ''}`;
    case 'unreachable':
      return cause.message;
  }
}

/** The wire code a failure stands for (`unavailable` when the transport failed). */
export function causeCode(cause: RetryCause): string {
  switch (cause.kind) {
    case 'error':
      return cause.code;
    case 'refused':
      return CODE_OF_STATUS.get(cause.status) ?? 'unavailable';
    default:
      return 'unavailable';
  }
}

/**
 * Backoff before retry number `attempt` (0 for the first): at least the hint, at least
 * half the capped exponential ceiling, spread over half the larger of the two.
 */
export function retryDelayMs(attempt: number, hintMs: number | undefined, random: () => number = Math.random, policy: RetryPolicy = DEFAULT_RETRY_POLICY): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt));
  const hint = Math.min(Math.max(0, hintMs ?? 0), policy.maxHintMs);
  const low = Math.max(hint, ceiling / 2);
  return Math.round(low + random() * (Math.max(ceiling, hint) / 2));
}

/** The rule: retry after a delay, or give up with the message to show. */
export function retryDecision(cause: RetryCause, attempt: number, random: () => number = Math.random, policy: RetryPolicy = DEFAULT_RETRY_POLICY): RetryDecision {
  const { temporary, hintMs } = classify(cause);
  if (!temporary) return { retry: false, code: causeCode(cause), message: describeCause(cause) };
  return { retry: true, delayMs: retryDelayMs(attempt, hintMs, random, policy), why: describeCause(cause) };
}

