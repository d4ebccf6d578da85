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
  internal: 500,
};

/** Base of every error we raise on purpose: a stable code and a message that says what to do. */
export class SwitchboardError extends Error {
  readonly code: WireErrorCode;
  /** A temporary error may succeed if retried (Redis down, lease held elsewhere). */
  readonly temporary: boolean;
  constructor(code: WireErrorCode, message: string, options: { temporary?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = code;
    this.temporary = options.temporary ?? false;
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

export function toSwitchboardError(err: unknown): SwitchboardError {
  if (err instanceof SwitchboardError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SwitchboardError('internal', message, { cause: err });
}
