/**
 * One catalog of every error the gateway reports. Each code is stable: clients match on it,
 * and docs/errors.md lists them all (a test keeps the two in step).
 *
 * Wire codes are the `code` field of PROTOCOL.md's `error` frame; internal codes never
 * reach a client as such, they are mapped to a wire code at the edge.
 */
export const WIRE_ERROR_CODES = [
  'bad_frame',
  'unauthorized',
  'forbidden',
  'not_found',
  'rate_limited',
  'too_large',
  'unavailable',
  'conflict',
  'unsupported_media_type',
  'login_state_invalid',
  'login_failed',
  'internal',
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** HTTP status for each wire code, used by the REST routes. */
export const HTTP_STATUS: Record<WireErrorCode, number> = {
  bad_frame: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  rate_limited: 429,
  too_large: 413,
  unavailable: 503,
  conflict: 409,
  unsupported_media_type: 415,
  login_state_invalid: 400,
  login_failed: 401,
  internal: 500,
};

/**
 * Whether a client may succeed by retrying the same request later, per code: sent as the
 * `temporary` field of every `error` frame (docs/errors.md has the same column). One
 * instance may say otherwise (SwitchboardError's `temporary` option).
 */
export const TEMPORARY: Record<WireErrorCode, boolean> = {
  bad_frame: false,
  unauthorized: false,
  forbidden: false,
  not_found: false,
  rate_limited: true,
  too_large: false,
  unavailable: true,
  conflict: false,
  unsupported_media_type: false,
  login_state_invalid: false,
  login_failed: false,
  internal: true,
};

export interface ErrorOptions {
  /** Overrides the code's TEMPORARY entry for this one error. */
  temporary?: boolean;
  /** A hint: how long to wait before retrying (sent as `retryMs`). */
  retryMs?: number;
  cause?: unknown;
}

/** Base of every error we raise on purpose: a stable code and a message that says what to do. */
export class SwitchboardError extends Error {
  readonly code: WireErrorCode;
  /** A temporary error may succeed if retried (Redis down, lease held elsewhere, overload). */
  readonly temporary: boolean;
  readonly retryMs: number | undefined;
  constructor(code: WireErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = code;
    this.temporary = options.temporary ?? TEMPORARY[code];
    this.retryMs = options.retryMs;
  }
}

/** The epoch we hold is no longer the session's current one: another node owns it now. */
export class FencedError extends SwitchboardError {
  /** The epoch the owner record holds now; null when there is no record (Redis lost it). */
  readonly current: number | null;
  constructor(sid: string, epoch: number, current: number | null = null) {
    super('conflict', current === null
      ? `session ${sid}: epoch ${epoch} is fenced off; the session has no owner record`
      : `session ${sid}: epoch ${epoch} is fenced off; epoch ${current} owns the session now`);
    this.name = 'FencedError';
    this.current = current;
  }
}

/** Config could not be parsed; the message names the setting. */
export class ConfigError extends Error {
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

/** WebSocket close codes we use, with whether a client should reconnect. */
export const CLOSE = {
  normal: { code: 1000, temporary: false },
  goingAway: { code: 1001, temporary: true },
  policy: { code: 1008, temporary: false },
  tooLarge: { code: 1009, temporary: false },
  internal: { code: 1011, temporary: true },
  tryAgain: { code: 1013, temporary: true },
} as const;

/** Retry hint for a backing service that timed out or refused us. */
export const BACKEND_RETRY_MS = 1_000;

/**
 * Errors of a backing service that say "busy or briefly unreachable", not "bug": network
 * errors, descriptor exhaustion, PostgreSQL connection/resource/shutdown classes and pool
 * timeouts, Redis timeouts and cluster reconfiguration replies. Under overload these are
 * expected, so they become `unavailable` (temporary), never `internal`.
 */
const TRANSIENT_SYSTEM_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH',
  'EAI_AGAIN', 'EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM',
]);
/** SQLSTATE: 08 connection exception, 53 insufficient resources, 57P0x shutdown, 57014 timeout, 40001/40P01 retry. */
const TRANSIENT_SQLSTATE = /^(08...|53...|57P0[1-4]|57014|40001|40P01)$/;
const TRANSIENT_MESSAGE = new RegExp([
  'timeout exceeded when trying to connect', // pg pool: every connection busy
  'Connection terminated', // pg
  'too many clients', 'remaining connection slots', // PostgreSQL max_connections
  'Connection is closed', 'Command timed out', 'max retries per request', "Stream isn't writeable", // ioredis
  '^(LOADING|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|BUSY) ', // Redis replies
].join('|'), 'i');

export function isTransientError(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TRANSIENT_SYSTEM_CODES.has(code) || TRANSIENT_SQLSTATE.test(code))) return true;
    if (e.name === 'MaxRetriesPerRequestError' || TRANSIENT_MESSAGE.test(e.message)) return true;
  }
  return false;
}

export function toSwitchboardError(err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isTransientError(err)) {
    return new SwitchboardError('unavailable', `a backing service is overloaded or unreachable (${message}); retry in about ${BACKEND_RETRY_MS / 1000} s`, { retryMs: BACKEND_RETRY_MS, cause: err });
  }
  return new SwitchboardError('internal', message, { cause: err });
}

/** A backing service failed: the client may retry (never `internal` for a timeout). */
export function unreachable(what: string, err: unknown): SwitchboardError {
  const e = toSwitchboardError(err);
  if (e.code !== 'internal' && e.code !== 'unavailable') return e;
  return new SwitchboardError('unavailable', `${what} did not answer (overloaded or unreachable); retry in about ${BACKEND_RETRY_MS / 1000} s`, { retryMs: BACKEND_RETRY_MS, cause: err });
}
