/**
 * `switchboard top` against a real node: the live screen is driven through a real PTY
 * (node-pty) and read back through a terminal emulator (@xterm/headless), as a user
 * would see it: the node row and its counts, the sessions pane, sorting keys, `q`.
 * `--once` and `--json` run without a terminal, as scripts do.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as pty from 'node-pty';
import headless from '@xterm/headless';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';
import type { ClusterView } from '../src/edge/cluster-view.js';
import { formatAge, formatBytes, parseTopArgs, renderTop, sortSessions } from '../src/cli/top.js';
import { totals } from '../src/edge/cluster-view.js';

const { Terminal } = headless as unknown as typeof import('@xterm/headless');
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

/** `top` in a PTY of its own; its output goes through an emulator we can read. */
class TopInPty {
  raw = '';
  readonly exited: Promise<number>;
  private readonly proc: pty.IPty;
  private readonly term: InstanceType<typeof Terminal>;
  private written: Promise<void> = Promise.resolve();
  private waiters: Array<() => void> = [];

  constructor(args: string[], readonly cols = 150, readonly rows = 30) {
    this.term = new Terminal({ cols, rows, allowProposedApi: true });
    this.proc = pty.spawn(process.execPath, [MAIN, 'top', ...args], {
      name: 'xterm-256color', cols, rows,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TERM: 'xterm-256color' },
    });
    this.proc.onData((d) => {
      this.raw += d;
      this.written = this.written.then(() => new Promise<void>((resolve) => this.term.write(d, resolve)));
      void this.written.then(() => {
        for (const w of this.waiters.splice(0)) w();
      });
    });
    this.exited = new Promise((resolve) => this.proc.onExit(({ exitCode }) => {
      for (const w of this.waiters.splice(0)) w();
      resolve(exitCode);
    }));
  }

  /** The visible screen, one string per row, trailing spaces trimmed. */
  screen(): string[] {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < this.rows; i++) lines.push((buf.getLine(buf.viewportY + i)?.translateToString(true) ?? '').trimEnd());
    return lines;
  }

  /** Waits (on output, never on a timer) until `check` holds for the screen. */
  async waitFor<T>(what: string, check: (lines: string[]) => T | undefined | false, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.written;
      const found = check(this.screen());
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`top never showed ${what}; screen:\n${this.screen().join('\n')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  write(keys: string): void {
    this.proc.write(keys);
  }

  kill(): void {
    try {
      this.proc.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'top', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

const VIEW: ClusterView = {
  at: '2030-01-01T00:10:00.000Z',
  nodes: [
    { id: 'b-node', role: 'both', addr: '10.0.0.2:7070', sessions: 3, clients: 1, capacity: 100, draining: true, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.700Z', rss: 50 * 1024 * 1024, cpu: 0.25, keystrokeP99Ms: 1.5 },
    { id: 'a-node', role: 'both', addr: '10.0.0.1:7070', sessions: 1, clients: 4, capacity: 100, draining: false, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 80 * 1024 * 1024, cpu: 0.5, keystrokeP99Ms: null },
  ],
  sessions: [
    { sid: 'S1', kind: 'pty', owner: 'admin', node: 'a-node', status: 'running', createdAt: '2030-01-01T00:00:00.000Z', lastActivity: '2030-01-01T00:09:00.000Z', clients: 1, bytes: 10 },
    { sid: 'S2', kind: 'echo', owner: 'alice', node: 'b-node', status: 'running', createdAt: '2030-01-01T00:05:00.000Z', lastActivity: '2030-01-01T00:09:00.000Z', clients: 3, bytes: 5_000_000 },
    { sid: 'S3', kind: 'agent', owner: 'bob', node: 'b-node', status: 'running', createdAt: '2030-01-01T00:09:00.000Z', lastActivity: '2030-01-01T00:09:00.000Z', clients: 0, bytes: null },
  ],
};

t.test('rendering and sorting (pure)', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(5_000_000), '4.8 MiB');
  t.equal(formatBytes(null), '-');
  t.equal(formatAge(59_000), '59s');
  t.equal(formatAge(3_723_000), '1h02m');
  t.same(totals(VIEW), { nodes: 2, edges: 0, hosts: 2, sessions: 4, clients: 5, capacity: 200, draining: 1, unhealthy: 0, listedSessions: 3 });
  t.same(sortSessions(VIEW.sessions, 'clients').map((s) => s.sid), ['S2', 'S1', 'S3']);
  t.same(sortSessions(VIEW.sessions, 'age').map((s) => s.sid), ['S1', 'S2', 'S3'], 'age: oldest first');
  t.same(sortSessions(VIEW.sessions, 'bytes').map((s) => s.sid), ['S2', 'S1', 'S3'], 'unknown bytes last');
  t.same(sortSessions(VIEW.sessions, 'sessions', VIEW.nodes).map((s) => s.sid), ['S3', 'S2', 'S1'], 'busiest node first, newest first');

  const lines = renderTop(VIEW, { sort: 'sessions', cols: 200, rows: Number.POSITIVE_INFINITY, url: 'http://x', color: false });
  t.notOk(lines.some((l) => l.includes('\x1b')), 'no escapes without colour');
  const b = lines.findIndex((l) => l.startsWith('b-node'));
  const a = lines.findIndex((l) => l.startsWith('a-node'));
  t.ok(b >= 0 && b < a, 'nodes by sessions: b-node (3) before a-node (1)');
  // Nodes of a version that reports no keeper or PTYs: health from the other fields.
  t.match(lines[b], /^b-node\s+both\s+draining\s+-\s+3\s+1\s+3\.0%\s+-\s+25\.0%\s+50 MiB\s+0\.3s\s+1\.50ms$/);
  t.match(lines[a], /^a-node\s+both\s+ok\s+-\s+1\s+4\s+1\.0%\s+-\s+50\.0%\s+80 MiB\s+0\.1s\s+-$/);
  t.match(lines.find((l) => l.startsWith('TOTAL')), /^TOTAL\s+4\s+5\s+2\.0%$/);
  t.match(lines.find((l) => l.startsWith('S2')), /^S2\s+b-node\s+echo\s+alice\s+3\s+5m00s\s+4\.8 MiB$/);

  const small = renderTop(VIEW, { sort: 'sessions', cols: 40, rows: 12, url: 'http://x', color: false });
  t.equal(small.length, 12, 'never more lines than the screen');
  t.ok(small.every((l) => l.length <= 40), 'never wider than the screen');
  t.match(small.at(-1), /^… 2 more$/, 'says how many sessions did not fit');

  t.same(parseTopArgs(['--once', '--sort', 'bytes'], { SWITCHBOARD_TOKEN: 'tok' }), {
    url: 'http://127.0.0.1:7070', token: 'tok', once: true, json: false, sort: 'bytes', intervalMs: 1000, help: false,
  });
  t.throws(() => parseTopArgs(['--sort', 'weight']), /--sort takes/);
  t.throws(() => parseTopArgs(['--interval', '5']), /--interval/);
});

/** A pool: two edges in front, hosts with keepers up, down and off, one host draining. */
const POOL: ClusterView = {
  at: '2030-01-01T00:10:00.000Z',
  nodes: [
    { id: 'edge-1', role: 'edge', addr: '10.0.1.1:7070', sessions: 0, clients: 40, capacity: 20000, draining: false, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 60 * 1024 * 1024, cpu: 0.1, keystrokeP99Ms: 2 },
    { id: 'edge-2', role: 'edge', addr: '10.0.1.2:7070', sessions: 0, clients: 12, capacity: 20000, draining: true, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 60 * 1024 * 1024, cpu: 0.1, keystrokeP99Ms: null },
    { id: 'host-up', role: 'host', addr: '10.0.2.1:7070', sessions: 30, clients: 0, capacity: 100, draining: false, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 90 * 1024 * 1024, cpu: 0.3, keystrokeP99Ms: null, keeper: 'up', keeperGraceMs: 5000, ptys: 31, ptyMax: 4096 },
    { id: 'host-down', role: 'host', addr: '10.0.2.2:7070', sessions: 5, clients: 0, capacity: 100, draining: false, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 90 * 1024 * 1024, cpu: 0.1, keystrokeP99Ms: null, keeper: 'down', keeperGraceMs: 5000, ptys: 3, ptyMax: 4096 },
    { id: 'host-off', role: 'host', addr: '10.0.2.3:7070', sessions: 2, clients: 0, capacity: 100, draining: false, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 90 * 1024 * 1024, cpu: 0.1, keystrokeP99Ms: null, keeper: 'off', keeperGraceMs: 0, ptys: 4090, ptyMax: 4096 },
    { id: 'host-drain', role: 'host', addr: '10.0.2.4:7070', sessions: 8, clients: 0, capacity: 100, draining: true, startedAt: '2030-01-01T00:00:00.000Z', lastSeen: '2030-01-01T00:09:59.900Z', rss: 90 * 1024 * 1024, cpu: 0.1, keystrokeP99Ms: null, keeper: 'up', keeperGraceMs: 5000, ptys: 9, ptyMax: 4096 },
  ],
  sessions: [],
};

t.test('the pool: roles, health, keepers, PTYs (pure)', async (t) => {
  t.same(totals(POOL), { nodes: 6, edges: 2, hosts: 4, sessions: 45, clients: 52, capacity: 400, draining: 2, unhealthy: 2, listedSessions: 0 });
  const lines = renderTop(POOL, { sort: 'node', cols: 200, rows: Number.POSITIVE_INFINITY, url: 'http://x', color: false });
  t.match(lines[1], /^nodes 6: 2 edge, 4 host \(2 draining, 2 unhealthy\)\s/, 'the summary counts the pools and what is wrong');
  t.match(lines.find((l) => l.startsWith('NODE')), /^NODE\s+ROLE\s+HEALTH\s+KEEPER\s+SESS\s+CLIENTS\s+CAP USED\s+PTYS\s+CPU\s+RSS\s+BEAT\s+KEY P99$/);
  const row = (id: string): string | undefined => lines.find((l) => l.startsWith(`${id} `));
  t.match(row('edge-1'), /^edge-1\s+edge\s+ok\s+-\s+0\s+40\s+-\s+-\s/, 'an edge: healthy, no keeper, no capacity, no PTYs');
  t.match(row('edge-2'), /^edge-2\s+edge\s+draining\s+-\s/, 'a draining edge');
  t.match(row('host-up'), /^host-up\s+host\s+ok\s+up\s+30\s+0\s+30\.0%\s+31\/4096\s/, 'a host with its keeper up');
  t.match(row('host-down'), /^host-down\s+host\s+keeper down\s+down\s+5\s+0\s+5\.0%\s+3\/4096\s/, 'keeper down: placement sends it no terminals');
  t.match(row('host-off'), /^host-off\s+host\s+PTY limit\s+off\s+2\s+0\s+2\.0%\s+4090\/4096\s/, 'terminals in the node (keeper off), its machine out of PTYs');
  t.match(row('host-drain'), /^host-drain\s+host\s+draining\s+up\s+8\s/, 'a draining host');

  const colored = renderTop(POOL, { sort: 'node', cols: 200, rows: Number.POSITIVE_INFINITY, url: 'http://x', color: true });
  const tone = (id: string): string | undefined => colored.find((l) => l.includes(`${id} `))?.slice(0, 5);
  t.equal(tone('host-down'), '\x1b[31m', 'an unhealthy host is red');
  t.equal(tone('host-off'), '\x1b[31m');
  t.equal(tone('host-drain'), '\x1b[33m', 'a draining one amber');
  t.equal(tone('edge-2'), '\x1b[33m');
  t.equal(tone('host-up')?.startsWith('\x1b'), false, 'a healthy one plain');
  t.equal(tone('edge-1')?.startsWith('\x1b'), false);

  // The server's own verdict wins over recomputing (a newer server may know more).
  const told = { ...POOL, nodes: [{ ...POOL.nodes[2]!, health: { takes: 'no terminals' as const, reasons: ['keeper down' as const], load: 0.3, ptyUse: 0.01 } }] };
  t.match(renderTop(told, { sort: 'node', cols: 200, rows: Number.POSITIVE_INFINITY, url: 'http://x', color: false }).find((l) => l.startsWith('host-up')), /^host-up\s+host\s+keeper down\s+up\s/);
});

let server: TestNode;
const clients: TestClient[] = [];
t.before(async () => {
  server = await startNode();
});
t.teardown(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

async function client(): Promise<TestClient> {
  const c = await TestClient.connect(server.url);
  clients.push(c);
  return c;
}

t.test('the live screen through a real terminal', async (t) => {
  const id = server.config.nodeId;
  const first = await client();
  const { sid: a } = await first.request({ t: 'open', kind: 'echo' });
  // A keystroke, so the node has a round trip to report.
  first.send({ t: 'in', sid: a, data: Buffer.from('k') });
  await first.waitForOutput(a, 'k');

  const top = new TopInPty(['--url', server.http, '--token', TEST_TOKEN]);
  t.teardown(() => top.kill());
  const nodeRow = (sessions: number, clientCount: number) => (lines: string[]): string | undefined =>
    lines.find((l) => new RegExp(`^${id}\\s+both\\s+ok\\s+up\\s+${sessions}\\s+${clientCount}\\s`).test(l));

  const row = await top.waitFor('the node with 1 session and 1 client', nodeRow(1, 1));
  t.match(row, /\s0\.0%\s/, 'capacity used (1 of 20000)');
  t.match(row, /\d+ MiB/, 'RSS');
  t.match(row, /^\S+\s+both\s+ok\s+up\s/, 'healthy, its keeper up');
  t.match(row, /\s\d+\/\d+\s/, 'the machine\'s PTYs against the kernel\'s limit');
  t.match(row, /\s\d+\.\ds\s+(-|\d)/, 'heartbeat age');
  await top.waitFor('the keystroke p99 in the node row', (lines) => lines.find((l) => l.startsWith(id) && /\d\.?\d*ms$/.test(l)));
  t.pass('the node reports its keystroke p99');
  const header = top.screen().find((l) => l.startsWith('NODE'));
  t.match(header, /^NODE\s+ROLE\s+HEALTH\s+KEEPER\s+SESS\s+CLIENTS\s+CAP USED\s+PTYS\s+CPU\s+RSS\s+BEAT\s+KEY P99$/, 'node columns');
  await top.waitFor('session a in the sessions pane', (lines) => lines.find((l) => new RegExp(`^${a}\\s+${id}\\s+echo\\s+admin\\s+\\d+\\s+\\d+s\\s+1 B$`).test(l)));
  t.pass('the sessions pane shows owner node, kind, principal, clients, age and bytes');

  // Counts change as sessions open: a second session from a second client, and the
  // first session gets a second watcher.
  const second = await client();
  const { sid: b } = await second.request({ t: 'open', kind: 'echo' });
  await second.request({ t: 'attach', sid: a, from: 0 });
  await top.waitFor('2 sessions and 2 clients', nodeRow(2, 2));
  t.match(top.screen().find((l) => l.startsWith('TOTAL')), /^TOTAL\s+2\s+2\s/, 'totals follow');

  const order = (lines: string[]): [number, number] => [lines.findIndex((l) => l.startsWith(a)), lines.findIndex((l) => l.startsWith(b))];
  // Default sort (sessions): one node, so newest first: b above a.
  await top.waitFor('b above a', (lines) => {
    const [ia, ib] = order(lines);
    return ia > 0 && ib > 0 && ib < ia;
  });
  top.write('a');
  await top.waitFor('sort: age, a above b', (lines) => {
    const [ia, ib] = order(lines);
    return lines[0]!.includes('sort: age') && ia > 0 && ib > 0 && ia < ib;
  });
  t.pass('a sorts by age (oldest first)');
  top.write('s');
  await top.waitFor('sort: sessions again', (lines) => lines[0]!.includes('sort: sessions') && order(lines)[1] < order(lines)[0]);
  // The store's client counts follow within a few seconds: a has 2 watchers, b one.
  top.write('c');
  await top.waitFor('sort: clients, a (2 clients) above b (1)', (lines) => {
    const [ia, ib] = order(lines);
    return lines[0]!.includes('sort: clients') && new RegExp(`^${a}\\s.*\\s2\\s+\\d+s\\s`).test(lines[ia] ?? '') && ia < ib;
  });
  t.pass('c sorts by clients');

  top.write('q');
  t.equal(await top.exited, 0, 'q quits with status 0');
  t.ok(top.raw.includes('\x1b[?1049h') && top.raw.lastIndexOf('\x1b[?1049l') > top.raw.lastIndexOf('\x1b[?1049h'), 'the alternate screen was entered and left');
  t.ok(top.raw.lastIndexOf('\x1b[?25h') > top.raw.lastIndexOf('\x1b[?25l'), 'the cursor is shown again');
});

t.test('--once and --json for scripts; errors', async (t) => {
  const c = await client();
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  const once1 = await run(['--once', '--url', server.http, '--token', TEST_TOKEN]);
  t.equal(once1.code, 0);
  t.notOk(once1.stdout.includes('\x1b'), 'no escapes in --once');
  t.match(once1.stdout, new RegExp(`^${server.config.nodeId}\\s+both\\s+ok\\s+up\\s+\\d+`, 'm'), 'the node row: healthy, its keeper up');
  t.match(once1.stdout, new RegExp(`^${sid}\\s+${server.config.nodeId}\\s+echo\\s+admin`, 'm'), 'every session');

  const json = await run(['--json', '--url', server.http, '--token', TEST_TOKEN]);
  t.equal(json.code, 0);
  const snap = JSON.parse(json.stdout) as ClusterView & { totals: { nodes: number; sessions: number } };
  t.equal(snap.totals.nodes, 1);
  t.equal(snap.nodes[0]!.id, server.config.nodeId);
  t.match(snap.nodes[0], { role: 'both', draining: false, keeper: 'up', health: { takes: 'all', reasons: [] } }, 'role, draining, keeper and health in the JSON');
  t.ok(typeof snap.nodes[0]!.ptys === 'number' && typeof snap.nodes[0]!.ptyMax === 'number', 'the machine\'s PTYs and the kernel\'s limit');
  t.equal(snap.totals.sessions, snap.nodes[0]!.sessions);
  t.ok(snap.sessions.some((s) => s.sid === sid && s.kind === 'echo' && s.owner === 'admin'), 'the session, with its principal');

  const wrong = await run(['--once', '--url', server.http, '--token', 'wrong-token-0123456789']);
  t.equal(wrong.code, 1, 'a wrong token fails');
  t.match(wrong.stderr, /unauthorized.*--token/);
  const away = await run(['--json', '--url', 'http://127.0.0.1:1', '--token', TEST_TOKEN]);
  t.equal(away.code, 1);
  t.match(away.stderr, /cannot reach/);
  const bad = await run(['--sort', 'nope']);
  t.equal(bad.code, 2, 'a bad flag is a usage error');
});
