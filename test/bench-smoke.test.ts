/**
 * The bench harness works end to end: a small echo run (200 sessions × 2 keys/s for 3 s)
 * against its own local 2-node cluster (an edge and a host, through Redis), the same
 * against the bare relay baseline, and the idle scenario's figures. Asserts the harness,
 * not the server's speed: every keystroke echoed, no errors, every JSON field. No timing
 * assertions (those live in docs/bench.md, measured by `switchboard bench`).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

t.test('bench echo: 200 sessions × 2 keys/s across an edge and a host', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-smoke-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const report = join(dir, 'report.html');
  const { stdout } = await run(process.execPath, [
    MAIN, 'bench', 'echo', '--sessions', '200', '--rate', '2', '--duration', '3', '--warmup', '1', '--json', '--report', report,
  ], { timeout: 100_000, maxBuffer: 16 << 20 });
  const result = JSON.parse(stdout) as Record<string, any>;
  for (const field of ['scenario', 'parameters', 'p50', 'p90', 'p99', 'p999', 'max', 'reach', 'errors', 'nodes', 'loadgen', 'curve', 'expected', 'received', 'fromSend']) {
    t.ok(field in result, `JSON has ${field}`);
  }
  t.equal(result.scenario, 'echo');
  t.equal(result.parameters.sessions, 200);
  t.equal(result.parameters.rate, 2);
  t.equal(result.errors, 0, `no errors ${JSON.stringify(result.errorSamples)}`);
  t.equal(result.reach, 1, 'every keystroke came back');
  t.equal(result.expected, 200 * 2 * 3, 'expected = sessions × rate × duration');
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max']) t.ok(Number.isFinite(result[k]) && result[k] > 0, `${k} is a positive number`);
  t.ok(result.p50 <= result.p99 && result.p99 <= result.max, 'percentiles are ordered');
  t.same(result.nodes.map((n: { role: string }) => n.role).sort(), ['edge', 'host', 'postgres', 'redis']);
  for (const n of result.nodes) {
    t.ok(n.rssBytes > 0, `${n.id} RSS reported`);
    t.type(n.cpu, 'number', `${n.id} CPU reported`);
    t.type(n.usPerKeystroke, 'number', `${n.id} CPU per keystroke reported`);
  }
  const sum = result.nodes.reduce((a: number, n: { usPerKeystroke: number }) => a + n.usPerKeystroke, 0);
  t.ok(Math.abs(result.usPerKeystroke - sum) < 1, 'the total CPU per keystroke is the sum of the processes\'');
  t.ok(result.loadgen.workers >= 1 && typeof result.loadgen.cpu === 'number', 'load generator CPU reported');
  const html = await readFile(report, 'utf8');
  t.match(html, /<svg[\s\S]*polyline[\s\S]*<\/svg>/, 'the report has an inline SVG plot');
  t.match(html, /sessions/, 'the report shows the settings');
});

t.test('bench echo --baseline relay: the same load against the bare relay, side by side', async (t) => {
  const { stdout } = await run(process.execPath, [
    MAIN, 'bench', 'echo', '--sessions', '50', '--duration', '3', '--warmup', '1', '--baseline', 'relay', '--json',
  ], { timeout: 100_000, maxBuffer: 16 << 20 });
  const r = JSON.parse(stdout) as Record<string, any>;
  const b = r.baseline as Record<string, any>;
  t.ok(b, 'JSON has the baseline');
  t.match(b.parameters.system, /relay/);
  t.equal(r.reach, 1, 'switchboard: every keystroke came back');
  t.equal(b.reach, 1, `relay: every keystroke came back ${JSON.stringify(b.errorSamples)}`);
  t.equal(r.errors, 0);
  t.equal(b.errors, 0);
  t.equal(b.expected, 50 * 3, 'the relay got the same schedule');
  t.equal(b.expected, r.expected);
  t.same(b.nodes.map((n: { id: string }) => n.id).sort(), ['redis', 'relay-edge-1', 'relay-owner-1'], 'the relay\'s processes are measured');
  for (const n of b.nodes) t.type(n.usPerKeystroke, 'number', `${n.id} CPU per keystroke reported`);
  t.type(b.usPerKeystroke, 'number');
  t.match(r.ratio.of, /relay/);
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max']) {
    t.ok(b[k] > 0, `relay ${k} is a positive number`);
    t.ok(Math.abs(r.ratio[k] - r[k] / b[k]) < 0.01 * r.ratio[k] + 0.01, `ratio ${k} = switchboard ÷ relay`);
  }
});

t.test('bench idle: sessions opened then idle; memory per connection and session, Redis and PostgreSQL traffic', async (t) => {
  const { stdout } = await run(process.execPath, [MAIN, 'bench', 'idle', '--sessions', '300', '--duration', '2', '--warmup', '1', '--json'], { timeout: 100_000 });
  const i = JSON.parse(stdout) as Record<string, any>;
  t.equal(i.errors, 0, JSON.stringify(i.errorSamples));
  t.equal(i.reach, 1);
  t.equal(i.extra.connections, 300);
  t.type(i.extra.bytesPerConnection, 'number', 'edge bytes per connection');
  t.type(i.extra.bytesPerSession, 'number', 'host bytes per session');
  t.equal(i.extra.bytesPerConnectionWithSession, null, 'no node is both');
  for (const when of ['justAfterConnecting', 'atHighestRss']) {
    t.type(i.extra[when].bytesPerConnection, 'number', `edge bytes per connection ${when}`);
    t.type(i.extra[when].bytesPerSession, 'number', `host bytes per session ${when}`);
  }
  for (const n of i.extra.rssBytes) t.ok(n.highest >= n.before, `${n.id}: the highest RSS sampled is at least the RSS before`);
  t.match(i.extra.rssMethod, /\/proc/, 'says how RSS is measured');
  // Nodes heartbeat into the registry, so an idle cluster still talks to Redis.
  t.ok(i.extra.redisCommandsPerSecond > 0, 'Redis commands per second over the idle window');
  t.ok(i.extra.redisTopCommands.length > 0, 'the top Redis commands');
  for (const c of i.extra.redisTopCommands) t.ok(typeof c.command === 'string' && c.calls > 0 && c.perSecond > 0, `${c.command} counted`);
  t.type(i.extra.postgresTransactionsPerSecond, 'number', 'PostgreSQL transactions per second');
  t.ok(i.extra.idleSeconds >= 2, 'the idle window lasted --duration');
});

t.test('bench flood: a PTY pipeline run through sh -c, beside a bare node-pty reader of the same command', async (t) => {
  const { stdout } = await run(process.execPath, [
    MAIN, 'bench', 'flood', '--sessions', '20', '--duration', '2', '--warmup', '1', '--flood-cmd', 'yes | cat', '--json',
  ], { timeout: 100_000, maxBuffer: 16 << 20 });
  const f = JSON.parse(stdout) as Record<string, any>;
  t.equal(f.errors, 0, JSON.stringify(f.errorSamples));
  t.equal(f.reach, 1, 'the echo sessions beside the flood all answered');
  t.equal(f.parameters.floodCmd, 'yes | cat');
  t.ok(f.extra.floodMBps > 0, 'the pipeline flooded through the gateway');
  t.ok(f.extra.barePtyMBps > 0, 'the bare reader measured the same command');
  t.ok(f.extra.barePtyMeanReadBytes > 0, 'and the size of its reads');
  t.type(f.extra.ofBarePty, 'number', 'the ratio to the bare reader');
});

t.test('bench storm and idle run on one embedded node', async (t) => {
  const storm = await run(process.execPath, [MAIN, 'bench', 'storm', '--single', '--sessions', '300', '--json'], { timeout: 60_000 });
  const s = JSON.parse(storm.stdout) as Record<string, any>;
  t.equal(s.reach, 1);
  t.equal(s.errors, 0);
  t.equal(s.extra.attached, 300);
  t.ok(s.extra.creationsPerSecond > 0);
  const idle = await run(process.execPath, [MAIN, 'bench', 'idle', '--single', '--sessions', '300', '--duration', '1', '--warmup', '1', '--json'], { timeout: 60_000 });
  const i = JSON.parse(idle.stdout) as Record<string, any>;
  t.equal(i.errors, 0);
  t.equal(i.extra.connections, 300);
  t.type(i.extra.bytesPerConnectionWithSession, 'number', 'one node: bytes per connection with its session');
  t.equal(i.extra.redisCommandsPerSecond, null, 'no Redis');
  t.equal(i.extra.postgresTransactionsPerSecond, null, 'no PostgreSQL');
});
