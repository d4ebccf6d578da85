/**
 * A whole cluster on loopback for development and the bench: a private redis-server, an
 * optional private PostgreSQL, N node processes (`node dist/cli/main.js serve`) and an
 * optional HAProxy in front (round-robin, no stickiness). Everything lives in one temp
 * dir and on free ports: the machine's shared Redis (6379) and PostgreSQL (5432) are
 * never touched.
 *
 *   client ──▶ HAProxy :H ──rr──▶ node-1 :P1 ─┐
 *                          └────▶ node-2 :P2 ─┼──▶ redis :R, postgres :Q
 *                                   …         ┘
 *
 * Nothing is left behind: every binary is found before anything starts (a missing one
 * is a clear error, not a crash half-way), each part is registered for stopping the
 * moment it runs, any failure stops what did start, and a process that dies anyway
 * (an uncaught error) takes its children, its PostgreSQL (a daemon, not a child) and
 * its temp dir with it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile, chown, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { freePort, until, rawCommand, httpStatus, hasExited, stopChild } from './processes.js';

const run = promisify(execFile);

/**
 * The repo root: the nearest folder above this file with a package.json. This file runs
 * from src/launcher (tsx), dist/launcher (the CLI) and dist/src/launcher (the compiled
 * bench, whose build roots at the repo), so a fixed number of `..` would not do.
 */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('launcher: no package.json above this file');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot();
export const MAIN_JS = join(REPO_ROOT, 'dist', 'cli', 'main.js');
const READY_DEADLINE_MS = 30_000;
/** Where Debian puts PostgreSQL 15's server programs (not on PATH). */
const DEFAULT_PG_BIN = '/usr/lib/postgresql/15/bin';
/** Searched after PATH: a user's PATH often lacks the sbin directories haproxy lives in. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * An executable by name: a path as given (absolute or with a slash), else the first
 * match on PATH, then in the sbin directories. Undefined when there is none.
 */
export function findBinary(name: string, path = process.env.PATH ?? '', extraDirs: readonly string[] = SBIN_DIRS): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? name : undefined;
  for (const dir of [...path.split(delimiter).filter((d) => isAbsolute(d)), ...extraDirs]) {
    const file = join(dir, name);
    if (isExecutableFile(file)) return file;
  }
  return undefined;
}

/** The programs a cluster of these options runs, resolved; ready to spawn. */
export interface ClusterBinaries {
  redisServer?: string;
  /** initdb and pg_ctl. */
  initdb?: string;
  pgCtl?: string;
  /** PostgreSQL refuses to run as root: as root, its programs run through runuser. */
  runuser?: string;
  haproxy?: string;
}

/**
 * Finds every program the cluster needs before anything starts, so a missing one
 * stops nothing half-started. Overrides: REDIS_SERVER, PG_BIN (a directory), HAPROXY.
 * Throws one error naming everything missing, with the fix for each.
 */
export function resolveBinaries(options: Pick<LocalClusterOptions, 'redis' | 'postgres' | 'haproxy'>, env: NodeJS.ProcessEnv = process.env): ClusterBinaries {
  const found: ClusterBinaries = {};
  const missing: string[] = [];
  const path = env.PATH ?? '';
  if (options.redis) {
    const want = env.REDIS_SERVER ?? 'redis-server';
    found.redisServer = findBinary(want, path);
    if (!found.redisServer) missing.push(`redis-server (${want}): install the Debian package redis-server, or set REDIS_SERVER to its path`);
  }
  if (options.postgres) {
    const dir = env.PG_BIN ?? DEFAULT_PG_BIN;
    found.initdb = findBinary(join(dir, 'initdb'), path);
    found.pgCtl = findBinary(join(dir, 'pg_ctl'), path);
    if (!found.initdb || !found.pgCtl) missing.push(`PostgreSQL 15 (initdb and pg_ctl in ${dir}): install the Debian package postgresql, set PG_BIN to the directory holding them, or pass --no-postgres`);
    if (process.getuid?.() === 0) {
      found.runuser = findBinary('runuser', path);
      if (!found.runuser) missing.push('runuser (PostgreSQL refuses to run as root; it runs as the postgres user through runuser): install util-linux, or run as another user');
    }
  }
  if (options.haproxy) {
    const want = env.HAPROXY ?? 'haproxy';
    found.haproxy = findBinary(want, path);
    if (!found.haproxy) missing.push(`haproxy (${want}): install the Debian package haproxy, set HAPROXY to its path, or pass --no-haproxy`);
  }
  if (missing.length > 0) throw new MissingBinaryError(missing);
  return found;
}

export class MissingBinaryError extends Error {
  constructor(readonly missing: string[]) {
    super(`cannot start the cluster; nothing was started. Missing:\n${missing.map((m) => `  - ${m}`).join('\n')}`);
    this.name = 'MissingBinaryError';
  }
}

export type ClusterRole = 'edge' | 'host' | 'both';

export interface LocalClusterOptions {
  nodes: number;
  /** Role of each node, by index; missing entries are `both`. */
  roles?: ClusterRole[];
  redis: boolean;
  postgres: boolean;
  haproxy: boolean;
  /** Extra environment for every node (SWITCHBOARD_* settings). */
  env?: Record<string, string>;
  /** Extra `serve` flags for every node. */
  flags?: string[];
  /** Extra node.js options for every node (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Shared admin token; random when absent. */
  token?: string;
  /** Node ids are `${prefix}-${i + 1}`. */
  idPrefix?: string;
  /** Called with every line a node writes to stderr (JSON logs), for debugging. */
  onLog?: (nodeId: string, line: string) => void;
  /** Aborts the start (Ctrl-C): what started is stopped, and the start rejects. */
  signal?: AbortSignal;
}

export interface ClusterNode {
  id: string;
  role: ClusterRole;
  port: number;
  /** http://127.0.0.1:port */
  http: string;
  /** ws://127.0.0.1:port/v1/ws */
  ws: string;
  pid: number;
  proc: ChildProcess;
  /** The last stderr lines, for error messages. */
  logs: string[];
}

export interface LocalCluster {
  token: string;
  dir: string;
  nodes: ClusterNode[];
  redisUrl?: string;
  redisPid?: number;
  databaseUrl?: string;
  /** The PostgreSQL postmaster; the server processes for each connection are its children. */
  postgresPid?: number;
  /** http://127.0.0.1:port of HAProxy, when started. */
  haproxyUrl?: string;
  /** The URL clients should use: HAProxy's when there is one, else the first node's. */
  url: string;
  /** Sends a signal (default SIGKILL) to one node and waits for it to exit. */
  kill(nodeIndex: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stops every process and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

// Children still running when this process exits (a crash, Ctrl-C) die with it, and
// so do PostgreSQL postmasters (daemons: not our children) and temp dirs. Only
// synchronous work is possible in an exit handler.
const live = new Set<ChildProcess>();
const postmasters = new Set<number>();
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const child of live) if (!hasExited(child)) child.kill('SIGKILL');
  for (const pid of postmasters) {
    try {
      process.kill(pid, 'SIGQUIT'); // PostgreSQL's immediate shutdown: its backends go too
    } catch {
      // gone already
    }
  }
  for (const dir of tempDirs) {
    for (const pid of keeperPids(dir)) signal(pid, 'SIGKILL');
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a postmaster may still be writing into it; nothing more to do at exit
    }
  }
});

/**
 * Keepers the cluster's nodes started: each node's keeper listens in the cluster's own dir
 * (see startLocalCluster) and writes its pid next to its socket. Keepers are detached on
 * purpose (they outlive their node), so the cluster ends them itself.
 */
function keeperPids(dir: string): number[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.startsWith('keeper-') && f.endsWith('.sock.pid'));
  } catch {
    return [];
  }
  return files.map((f) => {
    try {
      return Number.parseInt(readFileSync(join(dir, f), 'utf8'), 10);
    } catch {
      return NaN;
    }
  }).filter((pid) => Number.isInteger(pid) && pid > 1);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

/**
 * Tracks a child and handles its spawn error: without a listener, an 'error' event
 * (ENOENT, EACCES) is thrown as an uncaught exception and ends the process half-way.
 * The error is kept on the child for the readiness checks to report.
 */
function track(child: ChildProcess): ChildProcess & { spawnError?: Error } {
  const c = child as ChildProcess & { spawnError?: Error };
  live.add(c);
  c.on('exit', () => live.delete(c));
  c.on('error', (err) => {
    c.spawnError = err;
    live.delete(c);
  });
  return c;
}

/** Why a child we started is not running, or undefined while it runs. */
function deathOf(child: ChildProcess & { spawnError?: Error }): string | undefined {
  if (child.spawnError) return `could not start: ${child.spawnError.message}`;
  if (hasExited(child)) return `exited with ${child.exitCode ?? child.signalCode}`;
  return undefined;
}

interface Stoppable {
  stop(): Promise<void>;
}

/** A private redis-server on a free port, its files in `dir`. */
export async function startRedis(dir: string, redisServer = resolveBinaries({ redis: true, postgres: false, haproxy: false }).redisServer!): Promise<{ url: string; pid: number } & Stoppable> {
  const port = await freePort();
  const child = track(spawn(redisServer, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--maxclients', '10000', '--protected-mode', 'no',
  ], { stdio: 'ignore' }));
  const stop = (): Promise<void> => stopChild(child);
  try {
    await until(async () => {
      const death = deathOf(child);
      if (death) throw new Error(`redis-server ${death}`);
      return (await rawCommand(port, 'PING')) === '+PONG\r\n';
    }, `redis-server on port ${port}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid!, stop };
}

/**
 * PostgreSQL refuses to run as root: initdb and pg_ctl run as the `postgres` user on a
 * directory it owns (when we are root; as any other user, as ourselves).
 */
async function startPostgres(dir: string, bins: ClusterBinaries): Promise<{ url: string; pid: number } & Stoppable> {
  const port = await freePort();
  const pgDir = join(dir, 'pg');
  const data = join(pgDir, 'data');
  const asRoot = process.getuid?.() === 0;
  const cmd = async (file: string, args: string[]): Promise<void> => {
    if (asRoot) await run(bins.runuser!, ['-u', 'postgres', '--', file, ...args], { cwd: '/' });
    else await run(file, args, { cwd: '/' });
  };
  await mkdir(pgDir);
  if (asRoot) {
    // The temp dir itself is 0700 root: let postgres traverse it.
    await chmod(dir, 0o755);
    const { uid, gid } = await postgresIds();
    await chown(pgDir, uid, gid);
  }
  await cmd(bins.initdb!, ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const opts = `-p ${port} -k ${pgDir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  let pid: number | undefined;
  const stop = async (): Promise<void> => {
    await cmd(bins.pgCtl!, ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    if (pid !== undefined) postmasters.delete(pid);
  };
  try {
    await cmd(bins.pgCtl!, ['-D', data, '-o', opts, '-l', join(pgDir, 'log'), '-w', '-t', '30', 'start']);
    // The postmaster's pid is the first line of its pid file; its backends are its children.
    pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    postmasters.add(pid);
  } catch (err) {
    // pg_ctl may give up waiting while the server still comes up: stop it either way.
    await stop();
    throw err;
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, pid, stop };
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/**
 * Round-robin with no stickiness; WebSocket tunnels stay open for an hour of silence.
 * `/readyz` health checks take a draining or dead node out of the rotation.
 */
export function haproxyConfig(port: number, nodes: Array<{ id: string; port: number }>): string {
  return `global
  maxconn 9000
  log stdout format raw local0 emerg

defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
  timeout client-fin 5s

frontend switchboard
  bind 127.0.0.1:${port}
  default_backend nodes

backend nodes
  balance roundrobin
  option httpchk
  # uWS answers nothing to a request without a Host header (HAProxy's default HTTP/1.0
  # check), so the check speaks HTTP/1.1 with one.
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
  http-check expect status 200
${nodes.map((n) => `  server ${n.id} 127.0.0.1:${n.port} check inter 1s fall 2 rise 1`).join('\n')}
`;
}

async function startHaproxy(dir: string, nodes: ClusterNode[], haproxy: string): Promise<{ url: string } & Stoppable> {
  const port = await freePort();
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, haproxyConfig(port, nodes));
  let stderr = '';
  const child = track(spawn(haproxy, ['-f', file, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = (): Promise<void> => stopChild(child);
  try {
    await until(async () => {
      const death = deathOf(child);
      if (death) throw new Error(`haproxy (${haproxy}) ${death}${stderr ? `: ${stderr.trim()}` : ''}`);
      return (await httpStatus(`${url}/readyz`)) === 200;
    }, `haproxy on port ${port}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}

export interface SpawnNodeOptions {
  id: string;
  role: ClusterRole;
  token: string;
  env?: Record<string, string>;
  flags?: string[];
  nodeArgs?: string[];
  port?: number;
  onLog?: (nodeId: string, line: string) => void;
}

/** Starts one `switchboard serve` process and waits until `/readyz` answers 200. */
export async function spawnNode(options: SpawnNodeOptions): Promise<ClusterNode> {
  const port = options.port ?? await freePort();
  const proc = track(spawn(process.execPath, [
    ...(options.nodeArgs ?? []), MAIN_JS, 'serve', '--port', String(port), '--node-id', options.id, '--role', options.role, ...(options.flags ?? []),
  ], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      SWITCHBOARD_TOKEN: options.token,
      SWITCHBOARD_LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  }));
  const logs: string[] = [];
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    for (const line of d.split('\n').filter(Boolean)) {
      logs.push(line);
      if (logs.length > 50) logs.shift();
      options.onLog?.(options.id, line);
    }
  });
  const http = `http://127.0.0.1:${port}`;
  try {
    await until(async () => {
      const death = deathOf(proc);
      if (death) throw new Error(death);
      return (await httpStatus(`${http}/readyz`)) === 200;
    }, `node ${options.id} /readyz`, READY_DEADLINE_MS);
  } catch (err) {
    await stopChild(proc, 'SIGKILL');
    throw new Error(`node ${options.id} did not become ready: ${(err as Error).message}\n${logs.slice(-10).join('\n')}`);
  }
  return { id: options.id, role: options.role, port, http, ws: `ws://127.0.0.1:${port}/v1/ws`, pid: proc.pid!, proc, logs };
}

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  if (options.nodes < 1) throw new Error('a cluster needs at least one node');
  if (options.nodes > 1 && !options.redis) throw new Error('several nodes need Redis (redis: true) to be one cluster');
  const bins = resolveBinaries(options);
  const token = options.token ?? randomBytes(18).toString('base64url');
  const dir = await mkdtemp(join(tmpdir(), 'sb-cluster-'));
  tempDirs.add(dir);
  const stops: Array<() => Promise<void>> = [];
  const nodes: ClusterNode[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.filter(Boolean).map((n) => stopChild(n.proc, 'SIGINT', 3_000)));
    // A keeper ends its terminals (SIGHUP) and exits on SIGTERM.
    for (const pid of keeperPids(dir)) signal(pid, 'SIGTERM');
    for (const s of stops.reverse()) await s().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };
  /** Starts a part and registers its stop the moment it runs, whatever fails next. */
  const started = async <T extends Stoppable>(part: Promise<T>): Promise<T> => {
    const p = await part;
    stops.push(p.stop);
    return p;
  };
  try {
    // Both start together; if one fails, the other is still registered once it is up
    // (allSettled), so the catch below stops it.
    const [redisResult, postgresResult] = await Promise.allSettled([
      options.redis ? started(startRedis(dir, bins.redisServer)) : undefined,
      options.postgres ? started(startPostgres(dir, bins)) : undefined,
    ]);
    if (redisResult.status === 'rejected') throw redisResult.reason;
    if (postgresResult.status === 'rejected') throw postgresResult.reason;
    options.signal?.throwIfAborted();
    const redis = redisResult.value;
    const postgres = postgresResult.value;
    const env: Record<string, string> = { ...options.env };
    if (redis) env.SWITCHBOARD_REDIS_URL = redis.url;
    if (postgres) env.SWITCHBOARD_DATABASE_URL = postgres.url;
    const prefix = options.idPrefix ?? 'node';
    // Hosts first, so an edge's first placement finds a live host in the registry.
    const order = [...Array(options.nodes).keys()].sort((a, b) => rank(options.roles?.[a]) - rank(options.roles?.[b]));
    for (const i of order) {
      options.signal?.throwIfAborted();
      const id = `${prefix}-${i + 1}`;
      // The keeper's socket in this cluster's dir, not the per-user default named after
      // the node id: two local clusters (a bench beside a test run) both have a node-1, and
      // one must not adopt the other's terminals or outlive it.
      const nodeEnv = { SWITCHBOARD_KEEPER_SOCKET: join(dir, `keeper-${id}.sock`), ...env };
      nodes[i] = await spawnNode({
        id, role: options.roles?.[i] ?? 'both', token, env: nodeEnv,
        ...(options.flags ? { flags: options.flags } : {}),
        ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
        ...(options.onLog ? { onLog: options.onLog } : {}),
      });
    }
    let haproxyUrl: string | undefined;
    options.signal?.throwIfAborted();
    if (options.haproxy) {
      const ha = await startHaproxy(dir, nodes, bins.haproxy!);
      stops.unshift(ha.stop);
      haproxyUrl = ha.url;
    }
    return {
      token, dir, nodes,
      ...(redis ? { redisUrl: redis.url, redisPid: redis.pid } : {}),
      ...(postgres ? { databaseUrl: postgres.url, postgresPid: postgres.pid } : {}),
      ...(haproxyUrl ? { haproxyUrl } : {}),
      url: haproxyUrl ?? nodes[0]!.http,
      async kill(nodeIndex, signal = 'SIGKILL') {
        const node = nodes[nodeIndex];
        if (!node) throw new Error(`no node ${nodeIndex}`);
        await stopChild(node.proc, signal, 60_000);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function rank(role: ClusterRole | undefined): number {
  return role === 'host' ? 0 : role === 'edge' ? 2 : 1;
}
