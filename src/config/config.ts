/**
 * The one config object: parsed once at start from flags and environment, validated,
 * frozen. Every setting has an environment name (SWITCHBOARD_X_Y) and a flag (--x-y);
 * a flag wins over the environment. Errors name the setting.
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { ConfigError } from '../errors/errors.js';
import { newToken } from '../util/ids.js';
import { defaultKeeperSocket, MAX_SOCKET_PATH } from '../keeper/paths.js';
import type { NodeRole } from '../registry/registry.js';

export type { NodeRole };
export type FailMode = 'open' | 'closed';
/** Where terminals live: a keeper process this node starts if none answers, one run by
 * the operator (a container, a unit), or inside the node (they end with it). */
export type KeeperMode = 'auto' | 'external' | 'off';

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Empty: memory seams. One URL: a single Redis. Several: Redis Cluster seeds. */
  readonly redisUrls: readonly string[];
  readonly databaseUrl: string | undefined;
  readonly databasePoolSize: number;
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly token: string;
  /** True when SWITCHBOARD_TOKEN was not given and we made one up. */
  readonly tokenGenerated: boolean;
  /** `none` switches authentication off (refused on non-loopback addresses). */
  readonly auth: 'token' | 'none';
  /** Allowed browser origins besides the page's own; `*` allows any. */
  readonly origins: readonly string[];
  readonly replayBytes: number;
  readonly maxFrame: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  readonly leaseTtlMs: number;
  readonly drainDeadlineMs: number;
  /** Most sessions this node hosts; placement skips a full node. */
  readonly capacity: number;
  readonly limitFailMode: FailMode;
  /** WebSocket upgrades allowed per client IP per minute, cluster-wide. */
  readonly connectRate: number;
  /** Failed logins (wrong token) allowed per client address per minute, cluster-wide. */
  readonly loginFailureRate: number;
  /**
   * Proxies (addresses or CIDRs) whose X-Forwarded-For is believed: the client address is
   * the rightmost entry not in this list. Empty: the peer address is the client.
   */
  readonly trustedProxies: readonly string[];
  /** Port of the separate metrics listener; undefined: off (`/metrics` on the main port, admin only). */
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  /** Frames a connection may send per second before `rate_limited`. */
  readonly frameRate: number;
  /** Bytes a connection may send per second (token bucket, checked before decoding), and its burst. */
  readonly connectionBytesRate: number;
  readonly connectionBytesBurst: number;
  /** A session with no attached client and no input this long is ended (SIGHUP); 0: never. */
  readonly idleTtlMs: number;
  /**
   * HS256 secret for user JWTs (32+ bytes); also the key share links are signed with
   * (derived from it). Undefined: no HS256 JWTs, links signed with a key derived from the token.
   */
  readonly jwtSecret: string | undefined;
  /** A JSON Web Key Set URL for asymmetrically signed user JWTs (cached, refetched on an unknown kid). */
  readonly jwksUrl: string | undefined;
  /** When set, a JWT's `iss` / `aud` must match. */
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  /** Running sessions a non-admin principal may own, cluster-wide. */
  readonly maxSessionsPerPrincipal: number;
  /** Opens a non-admin principal may make per minute, cluster-wide. */
  readonly openRate: number;
  /** Input bytes a non-admin principal may send per second, cluster-wide. */
  readonly inputRate: number;
  /** Longest life a share link may be given. */
  readonly linkMaxTtlSeconds: number;
  /** The gateway's public base URL (share links point there); undefined: http:// + the request's Host. */
  readonly publicUrl: string | undefined;
  /**
   * OpenID Connect sign-in for the page (src/auth/oidc.ts): the provider's issuer URL;
   * undefined: off. With it, the client id and SWITCHBOARD_SESSION_SECRET are required.
   */
  readonly oidcIssuer: string | undefined;
  readonly oidcClientId: string | undefined;
  /** Undefined: a public client (PKCE only, no client authentication). */
  readonly oidcClientSecret: string | undefined;
  /** Where the provider sends the browser back; undefined: SWITCHBOARD_PUBLIC_URL (else the request's Host) + /auth/callback. */
  readonly oidcRedirectUrl: string | undefined;
  /** Scopes asked for, space-separated; always includes `openid`. */
  readonly oidcScopes: string;
  /** `sub`s that sign in as administrators. */
  readonly oidcAdminSubjects: readonly string[];
  /** An ID token claim that makes an administrator: its name and the value it must equal or (an array) contain. */
  readonly oidcAdminClaim: { name: string; value: string } | undefined;
  /** How long a sign-in lasts: the session cookie's life. */
  readonly oidcSessionTtlMs: number;
  /** Signs the session cookie (32+ characters); required with OIDC. */
  readonly sessionSecret: string | undefined;
  /** Agent `limit` requests allowed per key per minute, cluster-wide. */
  readonly agentLimitRate: number;
  /** Largest terminal a client may open or resize to (snapshot cost grows with it). */
  readonly maxCols: number;
  readonly maxRows: number;
  /** Worker threads computing screen snapshots, and snapshots that may wait for one. */
  readonly snapshotWorkers: number;
  readonly snapshotQueue: number;
  /** A writer that pauses its session this long by not reading is detached. */
  readonly slowWriterMs: number;
  /** Session placements this edge runs at once, and opens that may wait for a turn. */
  readonly openConcurrency: number;
  readonly openQueue: number;
  /** Where an exited session's log is kept for late readers. */
  readonly exitedRetentionMs: number;
  /** Longest output waits before the write-behind PostgreSQL archive gets it. */
  readonly archiveIntervalMs: number;
  /** Ended sessions (and their events and archived output) are deleted this long after their last activity; 0 keeps them. */
  readonly retentionMs: number;
  readonly keeper: KeeperMode;
  /** The keeper's Unix socket; default `<tmp>/switchboard-<uid>/keeper-<node id>.sock`. */
  readonly keeperSocket: string;
  /** Output per terminal the keeper holds for the node before pausing the program. */
  readonly keeperBuffer: number;
  /** All terminals' output held together beyond which each is held to 256 KiB. */
  readonly keeperBudget: number;
  /** How long other nodes wait for a vanished node to come back to its kept terminals. */
  readonly keeperGraceMs: number;
  /** A keeper this node starts ends its terminals after this long without any node; 0: never. */
  readonly keeperOrphanMs: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  parse: (raw: string, name: string) => Config[K];
}

const MiB = 1024 * 1024;
/**
 * Shorter configured tokens are refused at start. The failed-login limit slows guessing
 * per address, but an attacker with many addresses is limited only by the token's length.
 */
export const MIN_TOKEN_LENGTH = 16;
/** HS256 keys shorter than the hash output (RFC 7518 §3.2) are refused at start. */
export const MIN_JWT_SECRET_BYTES = 32;
const KiB = 1024;

function fail(name: string, message: string): never {
  throw new ConfigError(name, message);
}

export function parseBytes(raw: string, name: string): number {
  const m = /^\s*(\d+)\s*(B|KiB|MiB|GiB|K|M|G|KB|MB|GB)?\s*$/i.exec(raw);
  if (!m) fail(name, `must be a byte size such as 65536, 64KiB or 1MiB (got '${raw}')`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const scale: Record<string, number> = { B: 1, K: KiB, KB: KiB, KIB: KiB, M: MiB, MB: MiB, MIB: MiB, G: 1024 * MiB, GB: 1024 * MiB, GIB: 1024 * MiB };
  return Number(m[1]) * scale[unit]!;
}

function integer(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^\d+$/.test(raw.trim())) fail(name, `must be a whole number ${min}-${max} (got '${raw}')`);
    const n = Number(raw);
    if (n < min || n > max) fail(name, `must be ${min}-${max} (got ${n})`);
    return n;
  };
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: `30s`, `15m`, `12h`, `7d` (a bare number is seconds); `0` is none. */
export function duration(raw: string, name: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(raw.trim());
  if (!m) fail(name, `must be a duration like 30s, 15m, 12h or 7d, or 0 (got '${raw}')`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2] || 's']!;
  if (!Number.isSafeInteger(ms)) fail(name, `is too long (got '${raw}')`);
  return ms;
}

function bytesBetween(min: number, max: number) {
  return (raw: string, name: string): number => {
    const n = parseBytes(raw, name);
    if (n < min || n > max) fail(name, `must be between ${min} and ${max} bytes (got ${n})`);
    return n;
  };
}

/** A duration: 0, 500ms, 30s, 15m, 24h, 7d (a bare number is milliseconds). */
export function parseDuration(raw: string, name: string): number {
  const m = /^\s*(\d+)\s*(ms|s|m|h|d)?\s*$/i.exec(raw);
  if (!m) fail(name, `must be a duration such as 0, 30s, 15m or 24h (got '${raw}')`);
  const scale: Record<string, number> = { MS: 1, S: 1000, M: 60_000, H: 3_600_000, D: 86_400_000 };
  return Number(m[1]) * scale[(m[2] ?? 'ms').toUpperCase()]!;
}

function durationBetween(min: number, max: number) {
  return (raw: string, name: string): number => {
    const n = parseDuration(raw, name);
    if (n !== 0 && (n < min || n > max)) fail(name, `must be 0 (never) or between ${min} ms and ${max} ms (got ${n} ms)`);
    return n;
  };
}

function choice<T extends string>(...allowed: T[]) {
  return (raw: string, name: string): T => {
    if (!(allowed as string[]).includes(raw)) fail(name, `must be one of ${allowed.join(', ')} (got '${raw}')`);
    return raw as T;
  };
}

const text = (raw: string, name: string): string => {
  if (raw.trim() === '') fail(name, 'must not be empty');
  return raw.trim();
};

function urlList(raw: string, name: string): string[] {
  const urls = raw.split(/[\s,]+/).filter(Boolean);
  for (const u of urls) {
    if (!/^rediss?:\/\//.test(u)) fail(name, `each entry must be a redis:// or rediss:// URL (got '${u}')`);
  }
  return urls;
}

function databaseUrl(raw: string, name: string): string {
  if (!/^postgres(ql)?:\/\//.test(raw)) fail(name, `must be a postgres:// URL (got '${raw.replace(/:[^:@/]*@/, ':***@')}')`);
  return raw;
}

function origins(raw: string): string[] {
  return raw.split(/[\s,]+/).filter(Boolean);
}

/** Addresses and CIDRs: 10.0.0.0/8, 192.168.1.7, fd00::/8, ::1. */
function addressList(raw: string, name: string): string[] {
  const entries = raw.split(/[\s,]+/).filter(Boolean);
  for (const e of entries) {
    const [address, prefix, ...rest] = e.split('/');
    const family = isIP(address ?? '');
    const max = family === 6 ? 128 : 32;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= max);
    if (family === 0 || rest.length > 0 || !prefixOk) fail(name, `each entry must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8 (got '${e}')`);
  }
  return entries;
}

/** An absolute path short enough for a Unix socket. */
function socketPath(raw: string, name: string): string {
  if (!raw.startsWith('/')) fail(name, `must be an absolute path (got '${raw}')`);
  if (Buffer.byteLength(raw) > MAX_SOCKET_PATH) fail(name, `must be at most ${MAX_SOCKET_PATH} bytes: the limit of a Unix socket path (got ${Buffer.byteLength(raw)})`);
  return raw;
}

function httpUrl(raw: string, name: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    fail(name, `must be an http:// or https:// URL (got '${raw}')`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(name, `must be an http:// or https:// URL (got '${raw}')`);
  return url.toString().replace(/\/$/, '');
}

function jwtSecret(raw: string, name: string): string {
  const bytes = Buffer.byteLength(raw, 'utf8');
  if (bytes < MIN_JWT_SECRET_BYTES) fail(name, `must be at least ${MIN_JWT_SECRET_BYTES} bytes (got ${bytes}): a shorter HS256 key can be brute-forced from any token it signed; use a long random string`);
  return raw;
}

/** Cookie-signing secrets shorter than this are refused at start. */
export const MIN_SESSION_SECRET_LENGTH = 32;

function sessionSecret(raw: string, name: string): string {
  if (raw.length < MIN_SESSION_SECRET_LENGTH) fail(name, `must be at least ${MIN_SESSION_SECRET_LENGTH} characters (got ${raw.length}): whoever guesses it can sign session cookies for any user; use a long random string`);
  return raw;
}

/**
 * The provider's issuer: https://, or http:// on a loopback address (a provider on the
 * same machine, for development and tests). No trailing slash is added or removed: it
 * must equal the `issuer` the provider's discovery document names.
 */
function issuerUrl(raw: string, name: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    fail(name, `must be the provider's issuer URL, https://… (got '${raw}')`);
  }
  const loopback = isLoopback(url.hostname) || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    fail(name, `must be an https:// URL (http:// only for a provider on a loopback address; got '${raw}')`);
  }
  if (url.search !== '' || url.hash !== '') fail(name, `must not have a query or fragment (got '${raw}')`);
  return raw.trim();
}

function scopes(raw: string, name: string): string {
  const list = raw.split(/[\s,]+/).filter(Boolean);
  if (list.some((s) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) fail(name, `must be scope names separated by spaces or commas (got '${raw}')`);
  if (!list.includes('openid')) list.unshift('openid');
  return [...new Set(list)].join(' ');
}

/** 15m, 8h, 7d: at least a minute, at most 30 days. */
function sessionTtl(raw: string, name: string): number {
  const ms = duration(raw, name);
  if (ms < 60_000 || ms > 30 * 86_400_000) fail(name, `must be between 1m and 30d (got '${raw}')`);
  return ms;
}

function subjects(raw: string): string[] {
  return raw.split(/[\s,]+/).filter(Boolean);
}

function claimMatch(raw: string, name: string): { name: string; value: string } {
  const m = /^\s*([A-Za-z0-9_.:/-]+)\s*=\s*(\S(?:.*\S)?)\s*$/.exec(raw);
  if (!m) fail(name, `must be claim=value, e.g. groups=switchboard-admins (got '${raw}')`);
  return { name: m[1]!, value: m[2]! };
}

/** `off` or a port; 0 picks a free one. */
function optionalPort(raw: string, name: string): number | undefined {
  if (raw.trim() === 'off') return undefined;
  return integer(0, 65535)(raw, name);
}

const SETTINGS: Array<Setting<keyof Config>> = [
  { key: 'host', env: 'SWITCHBOARD_HOST', parse: text },
  { key: 'port', env: 'SWITCHBOARD_PORT', parse: integer(0, 65535) },
  { key: 'redisUrls', env: 'SWITCHBOARD_REDIS_URL', parse: urlList },
  { key: 'databaseUrl', env: 'SWITCHBOARD_DATABASE_URL', parse: databaseUrl },
  { key: 'databasePoolSize', env: 'SWITCHBOARD_DATABASE_POOL', parse: integer(1, 1000) },
  { key: 'nodeId', env: 'SWITCHBOARD_NODE_ID', parse: (raw, name) => {
    if (!/^[A-Za-z0-9._:-]{1,128}$/.test(raw)) fail(name, 'must be 1-128 characters of A-Z a-z 0-9 . _ : -');
    return raw;
  } },
  { key: 'role', env: 'SWITCHBOARD_ROLE', parse: choice<NodeRole>('edge', 'host', 'both') },
  { key: 'token', env: 'SWITCHBOARD_TOKEN', parse: (raw, name) => {
    if (raw.length < MIN_TOKEN_LENGTH) fail(name, `must be at least ${MIN_TOKEN_LENGTH} characters (got ${raw.length}): a short token can be guessed; use a long random string`);
    return raw;
  } },
  { key: 'auth', env: 'SWITCHBOARD_AUTH', parse: choice('token', 'none') },
  { key: 'origins', env: 'SWITCHBOARD_ORIGINS', parse: origins },
  { key: 'replayBytes', env: 'SWITCHBOARD_REPLAY_BYTES', parse: bytesBetween(1024, 1024 * MiB) },
  { key: 'maxFrame', env: 'SWITCHBOARD_MAX_FRAME', parse: bytesBetween(1024, 64 * MiB) },
  { key: 'highWatermark', env: 'SWITCHBOARD_HIGH_WATERMARK', parse: bytesBetween(1024, 1024 * MiB) },
  { key: 'lowWatermark', env: 'SWITCHBOARD_LOW_WATERMARK', parse: bytesBetween(0, 1024 * MiB) },
  { key: 'leaseTtlMs', env: 'SWITCHBOARD_LEASE_TTL_MS', parse: integer(300, 600_000) },
  { key: 'drainDeadlineMs', env: 'SWITCHBOARD_DRAIN_DEADLINE_MS', parse: integer(0, 3_600_000) },
  { key: 'capacity', env: 'SWITCHBOARD_CAPACITY', parse: integer(1, 1_000_000) },
  { key: 'limitFailMode', env: 'SWITCHBOARD_LIMIT_FAIL_MODE', parse: choice<FailMode>('open', 'closed') },
  { key: 'connectRate', env: 'SWITCHBOARD_CONNECT_RATE', parse: integer(1, 10_000_000) },
  { key: 'loginFailureRate', env: 'SWITCHBOARD_LOGIN_FAILURE_RATE', parse: integer(1, 1_000_000) },
  { key: 'trustedProxies', env: 'SWITCHBOARD_TRUSTED_PROXIES', parse: addressList },
  { key: 'metricsPort', env: 'SWITCHBOARD_METRICS_PORT', parse: optionalPort },
  { key: 'metricsHost', env: 'SWITCHBOARD_METRICS_HOST', parse: text },
  { key: 'frameRate', env: 'SWITCHBOARD_FRAME_RATE', parse: integer(1, 10_000_000) },
  { key: 'connectionBytesRate', env: 'SWITCHBOARD_CONNECTION_BYTES_RATE', parse: bytesBetween(1024, 1024 * MiB) },
  { key: 'connectionBytesBurst', env: 'SWITCHBOARD_CONNECTION_BYTES_BURST', parse: bytesBetween(1024, 1024 * MiB) },
  { key: 'idleTtlMs', env: 'SWITCHBOARD_IDLE_TTL', parse: durationBetween(100, 366 * 86_400_000) },
  { key: 'jwtSecret', env: 'SWITCHBOARD_JWT_SECRET', parse: jwtSecret },
  { key: 'jwksUrl', env: 'SWITCHBOARD_JWKS_URL', parse: httpUrl },
  { key: 'jwtIssuer', env: 'SWITCHBOARD_JWT_ISSUER', parse: text },
  { key: 'jwtAudience', env: 'SWITCHBOARD_JWT_AUDIENCE', parse: text },
  { key: 'maxSessionsPerPrincipal', env: 'SWITCHBOARD_MAX_SESSIONS_PER_PRINCIPAL', parse: integer(1, 1_000_000) },
  { key: 'openRate', env: 'SWITCHBOARD_OPEN_RATE', parse: integer(1, 10_000_000) },
  { key: 'inputRate', env: 'SWITCHBOARD_INPUT_RATE', parse: bytesBetween(1024, 1024 * MiB) },
  { key: 'linkMaxTtlSeconds', env: 'SWITCHBOARD_LINK_MAX_TTL_SECONDS', parse: integer(60, 366 * 86_400) },
  { key: 'publicUrl', env: 'SWITCHBOARD_PUBLIC_URL', parse: httpUrl },
  { key: 'oidcIssuer', env: 'SWITCHBOARD_OIDC_ISSUER', parse: issuerUrl },
  { key: 'oidcClientId', env: 'SWITCHBOARD_OIDC_CLIENT_ID', parse: text },
  { key: 'oidcClientSecret', env: 'SWITCHBOARD_OIDC_CLIENT_SECRET', parse: text },
  { key: 'oidcRedirectUrl', env: 'SWITCHBOARD_OIDC_REDIRECT_URL', parse: httpUrl },
  { key: 'oidcScopes', env: 'SWITCHBOARD_OIDC_SCOPES', parse: scopes },
  { key: 'oidcAdminSubjects', env: 'SWITCHBOARD_OIDC_ADMIN_SUBJECTS', parse: subjects },
  { key: 'oidcAdminClaim', env: 'SWITCHBOARD_OIDC_ADMIN_CLAIM', parse: claimMatch },
  { key: 'oidcSessionTtlMs', env: 'SWITCHBOARD_OIDC_SESSION_TTL', parse: sessionTtl },
  { key: 'sessionSecret', env: 'SWITCHBOARD_SESSION_SECRET', parse: sessionSecret },
  { key: 'agentLimitRate', env: 'SWITCHBOARD_AGENT_LIMIT_RATE', parse: integer(1, 10_000_000) },
  { key: 'maxCols', env: 'SWITCHBOARD_MAX_COLS', parse: integer(80, 1000) },
  { key: 'maxRows', env: 'SWITCHBOARD_MAX_ROWS', parse: integer(24, 1000) },
  { key: 'snapshotWorkers', env: 'SWITCHBOARD_SNAPSHOT_WORKERS', parse: integer(1, 64) },
  { key: 'snapshotQueue', env: 'SWITCHBOARD_SNAPSHOT_QUEUE', parse: integer(0, 100_000) },
  { key: 'slowWriterMs', env: 'SWITCHBOARD_SLOW_WRITER_MS', parse: integer(100, 3_600_000) },
  { key: 'openConcurrency', env: 'SWITCHBOARD_OPEN_CONCURRENCY', parse: integer(1, 10_000) },
  { key: 'openQueue', env: 'SWITCHBOARD_OPEN_QUEUE', parse: integer(0, 1_000_000) },
  { key: 'exitedRetentionMs', env: 'SWITCHBOARD_EXITED_RETENTION_MS', parse: integer(0, 86_400_000) },
  { key: 'archiveIntervalMs', env: 'SWITCHBOARD_ARCHIVE_INTERVAL_MS', parse: integer(50, 600_000) },
  { key: 'retentionMs', env: 'SWITCHBOARD_RETENTION', parse: duration },
  { key: 'keeper', env: 'SWITCHBOARD_KEEPER', parse: choice<KeeperMode>('auto', 'external', 'off') },
  { key: 'keeperSocket', env: 'SWITCHBOARD_KEEPER_SOCKET', parse: socketPath },
  { key: 'keeperBuffer', env: 'SWITCHBOARD_KEEPER_BUFFER', parse: bytesBetween(4 * KiB, 1024 * MiB) },
  { key: 'keeperBudget', env: 'SWITCHBOARD_KEEPER_BUDGET', parse: bytesBetween(1 * MiB, 64 * 1024 * MiB) },
  { key: 'keeperGraceMs', env: 'SWITCHBOARD_KEEPER_GRACE_MS', parse: integer(0, 3_600_000) },
  { key: 'keeperOrphanMs', env: 'SWITCHBOARD_KEEPER_ORPHAN_MS', parse: integer(0, 604_800_000) },
  { key: 'logLevel', env: 'SWITCHBOARD_LOG_LEVEL', parse: choice('debug', 'info', 'warn', 'error') },
];

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 7070,
  redisUrls: [] as string[],
  databaseUrl: undefined,
  databasePoolSize: 10,
  role: 'both' as NodeRole,
  auth: 'token' as const,
  origins: [] as string[],
  replayBytes: MiB,
  maxFrame: 64 * KiB,
  highWatermark: 256 * KiB,
  lowWatermark: 64 * KiB,
  leaseTtlMs: 1_000,
  drainDeadlineMs: 30_000,
  capacity: 20_000,
  limitFailMode: 'open' as FailMode,
  connectRate: 6_000,
  loginFailureRate: 10,
  trustedProxies: [] as string[],
  metricsPort: undefined,
  metricsHost: '127.0.0.1',
  frameRate: 2_000,
  connectionBytesRate: MiB,
  connectionBytesBurst: 4 * MiB,
  idleTtlMs: 86_400_000,
  jwtSecret: undefined,
  jwksUrl: undefined,
  jwtIssuer: undefined,
  jwtAudience: undefined,
  maxSessionsPerPrincipal: 100,
  openRate: 60,
  inputRate: MiB,
  linkMaxTtlSeconds: 7 * 86_400,
  publicUrl: undefined,
  oidcIssuer: undefined,
  oidcClientId: undefined,
  oidcClientSecret: undefined,
  oidcRedirectUrl: undefined,
  oidcScopes: 'openid',
  oidcAdminSubjects: [] as string[],
  oidcAdminClaim: undefined,
  oidcSessionTtlMs: 8 * 3_600_000,
  sessionSecret: undefined,
  agentLimitRate: 60,
  maxCols: 500,
  maxRows: 200,
  snapshotWorkers: 1,
  snapshotQueue: 32,
  slowWriterMs: 10_000,
  openConcurrency: 64,
  openQueue: 4096,
  exitedRetentionMs: 600_000,
  archiveIntervalMs: 10_000,
  retentionMs: 7 * 86_400_000,
  keeper: 'auto' as KeeperMode,
  keeperSocket: undefined,
  // A flood moves at most keeperBuffer per keeper → log → keeper round trip: 1 MiB gave
  // 25-36 MB/s on the bench box against 22-25 with 256 KiB; 2 MiB only ~5% more
  // (docs/bench.md round 8). Beyond 256 KiB it is lent from the keeper-wide budget, so
  // thousands of flooding terminals stay bounded.
  keeperBuffer: MiB,
  keeperBudget: 64 * MiB,
  keeperGraceMs: 5_000,
  keeperOrphanMs: 3_600_000,
  logLevel: 'info' as const,
};

/** The flag for a setting: SWITCHBOARD_REPLAY_BYTES → --replay-bytes. */
export function flagName(env: string): string {
  return '--' + env.replace(/^SWITCHBOARD_/, '').toLowerCase().replace(/_/g, '-');
}

export function settingNames(): Array<{ env: string; flag: string }> {
  return SETTINGS.map((s) => ({ env: s.env, flag: flagName(s.env) }));
}

/**
 * Parses flags (`--port 7070` or `--port=7070`) over environment variables. Unknown
 * flags are an error: a typo must not silently fall back to a default.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const byFlag = new Map(SETTINGS.map((s) => [flagName(s.env), s]));
  const raw = new Map<string, string>();
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined && v !== '') raw.set(s.env, v);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const setting = byFlag.get(flag);
    if (!setting) throw new ConfigError(flag, `unknown option; known: ${[...byFlag.keys()].join(' ')}`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(flag, 'needs a value');
    raw.set(setting.env, value);
  }
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const s of SETTINGS) {
    const v = raw.get(s.env);
    if (v !== undefined) out[s.key] = s.parse(v, s.env);
  }
  const config = out as unknown as Config & { tokenGenerated: boolean };
  if (config.token === undefined) {
    out.token = newToken();
    out.tokenGenerated = true;
  } else {
    out.tokenGenerated = false;
  }
  if (out.nodeId === undefined) out.nodeId = `${hostname()}-${config.port}`;
  if (out.keeperSocket === undefined) out.keeperSocket = defaultKeeperSocket(out.nodeId as string);
  if (config.lowWatermark >= config.highWatermark) {
    fail('SWITCHBOARD_LOW_WATERMARK', `must be below SWITCHBOARD_HIGH_WATERMARK (${config.highWatermark})`);
  }
  if (config.connectionBytesBurst < config.maxFrame) {
    fail('SWITCHBOARD_CONNECTION_BYTES_BURST', `must be at least SWITCHBOARD_MAX_FRAME (${config.maxFrame}): a burst smaller than one frame would refuse every full-size frame`);
  }
  checkOidc(config, raw);
  if (config.auth === 'none' && !isLoopback(config.host)) {
    fail('SWITCHBOARD_AUTH', `authentication is off, so binding the non-loopback address ${config.host} is refused; set SWITCHBOARD_TOKEN or bind 127.0.0.1`);
  }
  return Object.freeze(out) as unknown as Config;
}

/** OIDC settings hang together: any of them needs the issuer, the client id and the cookie secret. */
function checkOidc(config: Config, raw: ReadonlyMap<string, string>): void {
  const given = [...raw.keys()].filter((k) => k.startsWith('SWITCHBOARD_OIDC_'));
  if (given.length === 0) return;
  if (config.oidcIssuer === undefined) fail('SWITCHBOARD_OIDC_ISSUER', `is required with ${given.join(', ')}: the provider's issuer URL (https://…)`);
  if (config.oidcClientId === undefined) fail('SWITCHBOARD_OIDC_CLIENT_ID', 'is required with SWITCHBOARD_OIDC_ISSUER: the client id the provider registered for this gateway');
  if (config.sessionSecret === undefined) {
    fail('SWITCHBOARD_SESSION_SECRET', `is required with SWITCHBOARD_OIDC_ISSUER: a random string of at least ${MIN_SESSION_SECRET_LENGTH} characters that signs the session cookie (the same on every node)`);
  }
  if (config.auth === 'none') fail('SWITCHBOARD_OIDC_ISSUER', 'needs authentication on: with SWITCHBOARD_AUTH=none everyone is the admin already');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
