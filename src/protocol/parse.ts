/**
 * Validation of untrusted client input, frame by frame. Every failure is a
 * SwitchboardError('bad_frame') whose message names the field, so a client author can
 * fix their client from the error alone.
 */
import { SwitchboardError } from '../errors/errors.js';
import { isSessionId } from '../util/ids.js';
import { decodeMessage } from './codec.js';
import type {
  ClientFrame, LossPolicy, OpenSpec, ResizePolicy, Role, SessionKind,
} from './frames.js';

export const DEFAULT_COLS = 80;
export const DEFAULT_ROWS = 24;
const MAX_DIMENSION = 1000;
const MAX_ARGS = 256;
const MAX_ENV_ENTRIES = 256;
const MAX_STRING = 4096;
const KINDS: readonly SessionKind[] = ['pty', 'agent', 'echo'];
const ROLES: readonly Role[] = ['writer', 'viewer'];
const POLICIES: readonly ResizePolicy[] = ['latest', 'smallest', 'largest', 'fixed'];
const LOSS_POLICIES: readonly LossPolicy[] = ['lost', 'restart'];
const SIGNALS = new Set(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGKILL', 'SIGUSR1', 'SIGUSR2', 'SIGCONT', 'SIGSTOP', 'SIGWINCH']);

function bad(message: string): never {
  throw new SwitchboardError('bad_frame', message);
}

type Fields = Record<string, unknown>;

function uint(f: Fields, name: string, required: boolean): number | undefined {
  const v = f[name];
  if (v === undefined || v === null) {
    if (required) bad(`field '${name}' is required (unsigned integer)`);
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`field '${name}' must be an unsigned integer`);
  return v;
}

function str(f: Fields, name: string, required: boolean): string | undefined {
  const v = f[name];
  if (v === undefined || v === null) {
    if (required) bad(`field '${name}' is required (string)`);
    return undefined;
  }
  if (typeof v !== 'string') bad(`field '${name}' must be a string`);
  if (v.length > MAX_STRING) bad(`field '${name}' is longer than ${MAX_STRING} characters`);
  return v;
}

function oneOf<T extends string>(f: Fields, name: string, allowed: readonly T[], fallback: T): T {
  const v = str(f, name, false);
  if (v === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(v)) bad(`field '${name}' must be one of ${allowed.join(', ')}`);
  return v as T;
}

function sid(f: Fields): string {
  const v = f.sid;
  if (!isSessionId(v)) bad("field 'sid' must be a session id (22+ URL-safe base64 characters)");
  return v;
}

function bytes(f: Fields, name: string): Uint8Array {
  const v = f[name];
  if (!(v instanceof Uint8Array)) bad(`field '${name}' must be MessagePack bin`);
  return v;
}

function dimension(f: Fields, name: string, fallback: number | undefined): number {
  const v = uint(f, name, fallback === undefined);
  const value = v ?? fallback!;
  if (value < 1 || value > MAX_DIMENSION) bad(`field '${name}' must be 1-${MAX_DIMENSION}`);
  return value;
}

/** Validates the fields of `open` (also used by POST /v1/sessions). */
export function parseOpenSpec(f: Fields): OpenSpec {
  const kind = oneOf(f, 'kind', KINDS, 'pty');
  const spec: OpenSpec = {
    kind,
    cols: dimension(f, 'cols', DEFAULT_COLS),
    rows: dimension(f, 'rows', DEFAULT_ROWS),
    policy: oneOf(f, 'policy', POLICIES, 'latest'),
    onLoss: oneOf(f, 'onLoss', LOSS_POLICIES, 'lost'),
  };
  const cmd = str(f, 'cmd', false);
  if (cmd !== undefined) spec.cmd = cmd;
  if (kind === 'agent' && cmd === undefined) bad("field 'cmd' is required for kind 'agent'");
  const cwd = str(f, 'cwd', false);
  if (cwd !== undefined) spec.cwd = cwd;
  const name = str(f, 'name', false);
  if (name !== undefined) spec.name = name;
  if (f.args !== undefined && f.args !== null) {
    if (!Array.isArray(f.args) || f.args.length > MAX_ARGS || !f.args.every((a) => typeof a === 'string' && a.length <= MAX_STRING)) {
      bad(`field 'args' must be an array of at most ${MAX_ARGS} strings`);
    }
    spec.args = f.args as string[];
  }
  if (f.env !== undefined && f.env !== null) {
    const env = f.env;
    if (typeof env !== 'object' || Array.isArray(env) || env instanceof Uint8Array) bad("field 'env' must be a map of strings");
    const entries = Object.entries(env as Record<string, unknown>);
    if (entries.length > MAX_ENV_ENTRIES) bad(`field 'env' has more than ${MAX_ENV_ENTRIES} entries`);
    for (const [k, v] of entries) {
      if (typeof v !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) bad(`field 'env' entry '${k}' must be NAME: string`);
    }
    spec.env = env as Record<string, string>;
  }
  return spec;
}

/** Decodes and validates one binary message from a client. */
export function parseClientFrame(message: Uint8Array): ClientFrame {
  let value: unknown;
  try {
    value = decodeMessage(message);
  } catch {
    bad('frame is not valid MessagePack');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    bad('frame must be a MessagePack map');
  }
  const f = value as Fields;
  switch (f.t) {
    case 'open': {
      const frame: ClientFrame = { t: 'open', ref: uint(f, 'ref', true)!, spec: parseOpenSpec(f) };
      if (f.sid !== undefined && f.sid !== null) frame.sid = sid(f);
      return frame;
    }
    case 'attach': {
      const from = uint(f, 'from', false);
      const frame: ClientFrame = { t: 'attach', ref: uint(f, 'ref', true)!, sid: sid(f), role: oneOf(f, 'role', ROLES, 'writer') };
      if (from !== undefined) frame.from = from;
      return frame;
    }
    case 'in': {
      const n = uint(f, 'n', false);
      const frame: ClientFrame = { t: 'in', sid: sid(f), data: bytes(f, 'data') };
      if (n !== undefined) frame.n = n;
      return frame;
    }
    case 'resize':
      return { t: 'resize', sid: sid(f), cols: dimension(f, 'cols', undefined), rows: dimension(f, 'rows', undefined) };
    case 'ack':
      return { t: 'ack', sid: sid(f), off: uint(f, 'off', true)! };
    case 'detach':
      return { t: 'detach', sid: sid(f) };
    case 'kill': {
      const signal = str(f, 'signal', false) ?? 'SIGHUP';
      if (!SIGNALS.has(signal)) bad(`field 'signal' must be one of ${[...SIGNALS].join(', ')}`);
      return { t: 'kill', ref: uint(f, 'ref', true)!, sid: sid(f), signal };
    }
    case 'ping':
      return { t: 'ping', ref: uint(f, 'ref', true)! };
    default:
      return bad(typeof f.t === 'string' ? `unknown frame type '${f.t.slice(0, 32)}'` : "field 't' (frame type) is required");
  }
}

/** The `ref` of a frame we could not fully parse, so the error can still be matched. */
export function salvageRef(message: Uint8Array): number | undefined {
  try {
    const value = decodeMessage(message) as Fields;
    const ref = value?.ref;
    return typeof ref === 'number' && Number.isSafeInteger(ref) && ref >= 0 ? ref : undefined;
  } catch {
    return undefined;
  }
}
