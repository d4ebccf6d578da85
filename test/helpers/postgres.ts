/**
 * Private PostgreSQL servers for tests: initdb into a temp dir, `postgres` on a free port
 * (TCP on 127.0.0.1, its socket in the temp dir), never the machine's shared server, so a
 * test may kill and restart it freely.
 *
 * PostgreSQL refuses to run as root: when the tests run as root, initdb and postgres run
 * as the `postgres` user (spawn's uid/gid, the same as `runuser -u postgres`, but the pid
 * we hold is the postmaster's own, so signals reach it unchanged).
 *
 * Tuned for speed, not durability: fsync, full_page_writes and synchronous_commit are off.
 * With synchronous_commit off, a `kill('SIGKILL')` may lose the commits of the last few
 * hundred milliseconds; pass `{ synchronousCommit: true }` when a test checks that
 * committed rows survive a crash.
 *
 * One server can serve several suites: `createDatabase()` gives each its own database.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, until } from './redis.js';

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const START_DEADLINE_MS = 30_000;
const run = promisify(execFile);

export interface PostgresServer {
  /** URL of a database created at start (`switchboard`), for tests that need just one. */
  url: string;
  port: number;
  /** The temp dir: data in `data/`, the Unix socket, `postgres.log`. */
  dir: string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Terminates the server and removes its directory. */
  stop(): Promise<void>;
  /**
   * Sends a signal and waits for the server to exit. SIGKILL (the default, a crash) goes
   * to the postmaster and every backend at once, as if the machine died.
   * SIGINT is a fast shutdown, SIGQUIT an immediate one.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and data dir (crashing it first if running). */
  restart(): Promise<void>;
  /** Tail of the server log, for failure messages. */
  log(): Promise<string>;
}

export interface PostgresOptions {
  synchronousCommit?: boolean;
}

interface RunAs {
  uid: number;
  gid: number;
}

/** The postgres user when we are root, else ourselves. */
async function runAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

// Servers still running when the test process exits (a crash, a bail-out) die with it.
const live = new Map<ChildProcess, string>();
process.on('exit', () => {
  for (const [child, dir] of live) {
    killAll(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Every PostgreSQL child makes itself a process group leader (setsid), so a group
 * signal misses them: find the postmaster's children in /proc.
 */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may hold spaces and parentheses.
      const [, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Alive and not a zombie (a zombie holds no shared memory any more). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGKILL to the postmaster and all its backends at once: the machine died. Returns the pids. */
function killAll(child: ChildProcess): number[] {
  const pids = [child.pid!, ...childPids(child.pid!)];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function canConnect(port: number, database: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const user = await runAs();
  const dir = await mkdtemp(join(tmpdir(), 'sb-pg-'));
  const data = join(dir, 'data');
  const logPath = join(dir, 'postgres.log');
  const ids = user ? { uid: user.uid, gid: user.gid } : {};
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', HOME: dir, TZ: 'UTC' };
  if (user) await chown(dir, user.uid, user.gid);

  const readLog = async (): Promise<string> => (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');

  try {
    await run(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...ids, env, cwd: dir });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(err as { stderr?: string }).stderr ?? String(err)}`, { cause: err });
  }
  const port = await freePort();

  const spawnServer = async (): Promise<ChildProcess> => {
    const logFile = await open(logPath, 'a');
    try {
      const child = spawn(join(PG_BIN, 'postgres'), [
        '-D', data, '-p', String(port), '-k', dir,
        '-c', 'listen_addresses=127.0.0.1',
        '-c', 'fsync=off',
        '-c', 'full_page_writes=off',
        '-c', `synchronous_commit=${options.synchronousCommit ? 'on' : 'off'}`,
        '-c', 'shared_buffers=16MB',
        '-c', 'max_connections=200',
        '-c', 'huge_pages=off',
        '-c', 'autovacuum=off',
        '-c', 'checkpoint_timeout=1h',
        '-c', 'max_wal_size=1GB',
      ], { ...ids, env, cwd: dir, stdio: ['ignore', logFile.fd, logFile.fd] });
      live.set(child, dir);
      child.on('exit', () => live.delete(child));
      // Never keep tap's root test from ending; kill() refs it while waiting for the exit.
      child.unref();
      return child;
    } finally {
      await logFile.close();
    }
  };

  const waitReady = async (child: ChildProcess): Promise<void> => {
    try {
      await until(async () => {
        if (!isRunning(child)) throw new Error('postgres exited');
        return canConnect(port, 'postgres');
      }, `postgres on port ${port}`, START_DEADLINE_MS);
    } catch (err) {
      throw new Error(`${(err as Error).message}; log:\n${await readLog()}`, { cause: err });
    }
  };

  const killChild = async (c: ChildProcess, signal: NodeJS.Signals): Promise<void> => {
    if (!isRunning(c)) return;
    c.ref();
    const exited = once(c, 'exit');
    if (signal !== 'SIGKILL') {
      c.kill(signal);
      await exited;
      return;
    }
    const pids = killAll(c);
    await exited;
    // A new postmaster refuses to start while an old backend still holds the shared
    // memory, so wait until every one of them is gone.
    await until(() => !pids.some(isAlive), 'postgres backends to exit', START_DEADLINE_MS);
  };

  const createDatabase = async (name = `db_${Math.random().toString(36).slice(2, 10)}`): Promise<string> => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: lower-case letters, digits and _ only`);
    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    admin.on('error', () => {});
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    return `postgres://postgres@127.0.0.1:${port}/${name}`;
  };

  let child = await spawnServer();
  try {
    await waitReady(child);
    await createDatabase('switchboard');
  } catch (err) {
    await killChild(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `postgres://postgres@127.0.0.1:${port}/switchboard`,
    port,
    dir,
    createDatabase,
    log: readLog,
    async kill(signal = 'SIGKILL') {
      await killChild(child, signal);
    },
    async restart() {
      await killChild(child, 'SIGKILL');
      child = await spawnServer();
      await waitReady(child);
    },
    async stop() {
      await killChild(child, 'SIGQUIT');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
