/**
 * `switchboard cluster` leaves nothing running when it cannot start: a missing program
 * is reported before anything starts; a part failing after others started (HAProxy, a
 * node) and Ctrl-C in the middle of the start stop everything started (PostgreSQL is a
 * daemon, not a child, and used to survive). `switchboard bench` stopped by SIGTERM in the
 * middle of a run leaves nothing either (its keepers and PostgreSQL used to survive).
 * Each run gets a private TMPDIR and a marker in its environment, so its processes can
 * be told from everyone else's.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { findBinary, MissingBinaryError, resolveBinaries, startLocalCluster } from '../src/launcher/local-cluster.js';
import { until } from '../src/launcher/processes.js';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

/** Processes whose command line or environment carries the run's marks. */
function processesOf(dir: string, mark: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmdline = '';
    let environ = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue; // gone, or not ours to read
    }
    if (cmdline.includes(dir) || environ.includes(mark)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ').trim()}`);
  }
  return found;
}

interface Run {
  dir: string;
  mark: string;
  proc: ReturnType<typeof spawn>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startCluster(t: Test, args: string[], env: Record<string, string>): Run {
  return startCli(t, ['cluster', '--token', 'robust-test-token-0123', ...args], env);
}

/** A CLI command with a private TMPDIR and a mark in its environment. */
function startCli(t: Test, args: string[], env: Record<string, string>): Run {
  const dir = mkdtempSync(join(tmpdir(), 'sb-robust-'));
  // PostgreSQL runs as its own user and must reach its data dir inside this one.
  chmodSync(dir, 0o755);
  const mark = `SWITCHBOARD_TEST_MARK=${randomBytes(9).toString('base64url')}`;
  const [k, v] = mark.split('=') as [string, string];
  const proc = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TMPDIR: dir, [k]: v, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdout!.resume();
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, mark, proc, stderr: () => stderr, exited };
}

/** After the CLI exited: nothing of its own runs, and its temp dir is empty. */
async function nothingLeft(t: Test, run: Run): Promise<void> {
  // Processes it stopped may take a moment to be reaped by their parents.
  await until(() => processesOf(run.dir, run.mark).length === 0, `no process of the run left (${processesOf(run.dir, run.mark).join('; ')})`, 10_000)
    .then(() => t.pass('no process of the run is left'), (err: Error) => t.fail(err.message));
  t.same(readdirSync(run.dir), [], 'its temp dir was removed');
}

t.test('finding programs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bins-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'tool'), '#!/bin/sh\n');
  chmodSync(join(bin, 'tool'), 0o755);
  writeFileSync(join(bin, 'plain'), 'not executable');
  t.equal(findBinary('tool', `/nowhere:${bin}`, []), join(bin, 'tool'), 'found on PATH');
  t.equal(findBinary('plain', bin, []), undefined, 'not executable: not found');
  t.equal(findBinary('tool', '/nowhere', []), undefined);
  t.equal(findBinary('tool', '', [bin]), join(bin, 'tool'), 'found in the extra (sbin) directories');
  t.equal(findBinary(join(bin, 'tool'), ''), join(bin, 'tool'), 'a path is taken as given');
  t.equal(findBinary('tool', 'relative/dir', []), undefined, 'relative PATH entries are ignored');

  const err = t.throws(() => resolveBinaries({ redis: true, postgres: true, haproxy: true }, { PATH: bin, REDIS_SERVER: 'no-redis', PG_BIN: dir, HAPROXY: 'no-haproxy' })) as MissingBinaryError;
  t.ok(err instanceof MissingBinaryError);
  t.equal(err.missing.length >= 3, true, 'every missing program at once');
  t.match(err.message, /nothing was started/);
  t.match(err.message, /haproxy .*--no-haproxy/);
  t.match(err.message, /PostgreSQL 15 .*--no-postgres/);
  t.same(resolveBinaries({ redis: false, postgres: false, haproxy: false }, { PATH: '' }), {}, 'nothing needed, nothing looked for');
});

t.test('haproxy missing: a clear error before anything starts', async (t) => {
  const run = startCluster(t, ['--nodes', '1'], { HAPROXY: '/nonexistent/haproxy' });
  t.equal(await run.exited, 1);
  t.match(run.stderr(), /haproxy \(\/nonexistent\/haproxy\): install the Debian package haproxy, set HAPROXY to its path, or pass --no-haproxy/);
  t.notMatch(run.stderr(), /starting Redis/, 'it did not start anything');
  t.notMatch(run.stderr(), /at .*\.js:\d+/, 'no stack trace');
  await nothingLeft(t, run);
});

t.test('haproxy failing after Redis, PostgreSQL and a node started: all stopped', async (t) => {
  const run = startCluster(t, ['--nodes', '1'], { HAPROXY: '/bin/false' });
  t.equal(await run.exited, 1);
  t.match(run.stderr(), /haproxy \(\/bin\/false\) exited with 1/);
  t.match(run.stderr(), /everything it had started was stopped/);
  await nothingLeft(t, run);
});

t.test('a node that cannot start: Redis and PostgreSQL stopped', async (t) => {
  const run = startCluster(t, ['--nodes', '2', '--no-haproxy'], { SWITCHBOARD_REPLAY_BYTES: 'lots' });
  t.equal(await run.exited, 1);
  t.match(run.stderr(), /node node-\d did not become ready: exited with 2/);
  t.match(run.stderr(), /SWITCHBOARD_REPLAY_BYTES/, 'the node says which setting is wrong');
  await nothingLeft(t, run);
});

t.test('Ctrl-C while starting: everything started is stopped', async (t) => {
  const run = startCluster(t, ['--nodes', '1', '--no-haproxy'], {});
  // Interrupt once PostgreSQL (the daemon that used to survive) is up.
  await until(() => {
    const cluster = readdirSync(run.dir).find((d) => d.startsWith('sb-cluster-'));
    return cluster !== undefined && existsSync(join(run.dir, cluster, 'pg', 'data', 'postmaster.pid'));
  }, 'PostgreSQL to start', 60_000);
  run.proc.kill('SIGINT');
  t.equal(await run.exited, 130, 'exits 130');
  t.match(run.stderr(), /interrupted; everything started was stopped/);
  await nothingLeft(t, run);
});

t.test("each node's keeper lives in the cluster's own dir and stops with the cluster", async (t) => {
  // Keepers are detached so that they outlive their node; with the per-user default
  // socket, a bench's node-1 and a test cluster's node-1 shared one keeper, and every
  // cluster left its keepers running after it stopped.
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const cluster = await startLocalCluster({ nodes: 1, redis: false, postgres: false, haproxy: false, idPrefix: `kc${randomBytes(3).toString('hex')}` });
  t.teardown(() => cluster.stop());
  const pidFile = join(cluster.dir, `keeper-${cluster.nodes[0]!.id}.sock.pid`);
  await until(() => existsSync(pidFile), 'the node to start its keeper in the cluster dir');
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
  t.ok(alive(pid), 'the keeper runs');
  await cluster.stop();
  await until(() => !alive(pid), 'the keeper to exit');
  t.notOk(alive(pid), 'stopping the cluster stopped its keeper');
  t.notOk(existsSync(cluster.dir), 'and removed the dir');
});

// Stopped while it measures Switchboard, and while it measures the bare relay after it
// (other processes, other temp dirs).
for (const phase of [
  { name: 'Switchboard', args: [], measuring: /\[bench\] sent \d+/ },
  { name: 'the relay baseline', args: ['--baseline', 'relay'], measuring: /baseline \(.*\): connecting[\s\S]*\[bench\] sent \d+/ },
]) {
  t.test(`bench stopped by SIGTERM while it measures ${phase.name}: everything it started is stopped`, async (t) => {
    const run = startCli(t, ['bench', 'echo', '--sessions', '20', '--duration', phase.args.length ? '4' : '60', '--warmup', '1', ...phase.args], {});
    // Progress lines come once the sessions are open and keystrokes are being sent.
    await until(() => phase.measuring.test(run.stderr()), `the bench to measure ${phase.name}`, 60_000);
    run.proc.kill('SIGTERM');
    t.equal(await run.exited, 143, 'exits 143 (128 + SIGTERM)');
    t.match(run.stderr(), /SIGTERM: stopping what the run started/);
    await nothingLeft(t, run);
  });
}
