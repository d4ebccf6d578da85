/**
 * Metrics: the keystroke window and its p99, the exposition, and what the seam
 * instrumentation counts (fenced writes, takeovers, store errors, the bus probe), on
 * the memory seams; then a real node: keystrokes and opens through the edge show up in
 * /metrics, agent traffic does not count as keystrokes.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { FencedError } from '../src/errors/errors.js';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { LatencyWindow, Metrics, percentile } from '../src/node/metrics.js';
import { BusProbe, instrumentHost, instrumentSeams } from '../src/node/instrument.js';
import { memorySeams } from '../src/node/wiring.js';
import type { SessionRecord } from '../src/store/store.js';
import { startNode, TEST_TOKEN } from './helpers/node.js';
import { TestClient } from './helpers/ws.js';

const AGENT = fileURLToPath(new URL('./fixtures/agent.mjs', import.meta.url));

/** One sample's value from exposition text; undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const re = new RegExp(`^${name}\\{${labels}${labels ? ',' : ''}node="(?:[^"\\\\]|\\\\.)*"\\} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

t.test('percentile and the keystroke window', async (t) => {
  t.equal(percentile([], 0.99), null);
  t.equal(percentile([5], 0.99), 5);
  t.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 0.99), 99, 'nearest rank');
  t.equal(percentile([3, 1, 2], 0.5), 2, 'unsorted input');

  let now = 0;
  const w = new LatencyWindow(60_000, () => now);
  t.equal(w.p99(), null, 'no samples: null');
  now = 2_000;
  for (let i = 1; i <= 100; i++) w.record(i);
  t.equal(w.p99(), 99);
  now = 2_500;
  w.record(1_000);
  t.equal(w.p99(), 100, 'a new sample counts at once');
  now = 62_100;
  t.equal(w.p99(), 1_000, 'samples older than the window are left out');
  now = 63_200;
  t.equal(w.p99(), null, 'all of them, eventually');
});

t.test('exposition: node label, default process metrics, scrape-time values', async (t) => {
  const m = new Metrics();
  m.framesIn.inc();
  m.framesIn.inc(2);
  m.clients.set(7);
  let v = 1;
  m.register('switchboard_test_value', 'a test value', 'gauge', () => v);
  m.register('switchboard_test_value', 'a test value, registered again', 'gauge', () => v * 10);
  m.register('switchboard_test_broken', 'a reader that throws', 'gauge', () => {
    throw new Error('gone');
  });
  m.observeKeystroke(3);
  v = 2;
  const text = await m.render('n"1');
  t.equal(sample(text, 'switchboard_frames_in_total'), 3);
  t.equal(sample(text, 'switchboard_clients'), 7);
  t.equal(sample(text, 'switchboard_test_value'), 20, 'read at scrape time; a second registration replaces the first');
  t.equal(text.match(/^# TYPE switchboard_test_value /gm)?.length, 1, 'one family');
  t.match(text, /^# TYPE switchboard_test_broken gauge$/m, 'a failing reader does not fail the scrape…');
  t.notMatch(text, /^switchboard_test_broken\{/m, '…it leaves its sample out');
  t.match(text, /^switchboard_clients\{node="n\\"1"\} 7$/m, 'the node label is escaped');
  t.equal(sample(text, 'switchboard_keystroke_seconds_count'), 1);
  t.equal(sample(text, 'switchboard_keystroke_seconds_bucket', 'le="0.005"'), 1, '3 ms lands in the 5 ms bucket');
  t.equal(sample(text, 'switchboard_keystroke_seconds_bucket', 'le="0.002"'), 0);
  t.match(text, /^process_resident_memory_bytes\{node="n\\"1"\} \d+$/m, 'process metrics');
  t.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m, 'GC');
  t.match(text, /^nodejs_eventloop_lag_p99_seconds\{/m, 'event-loop lag');
  t.equal(m.keystrokeP99Ms(), 3);
});

t.test('seam instrumentation: fenced writes, takeovers, store errors', async (t) => {
  const metrics = new Metrics();
  const raw = memorySeams({ replayBytes: 1 << 20 });
  const seams = instrumentSeams(raw, metrics, 'n1');
  t.teardown(() => seams.close());
  const sid = 'AAAAAAAAAAAAAAAAAAAAAAAA';
  const epoch = (await seams.leases.claim(sid, 'n1'))!;
  await seams.log.init(sid, 0);
  await seams.log.append(sid, epoch, 0, Buffer.from('ok'));
  const taken = await seams.leases.takeover(sid, 'n2', { node: 'n1', epoch });
  t.ok(taken !== null && taken > epoch, 'a takeover');
  await t.rejects(seams.log.append(sid, epoch, 2, Buffer.from('late')), FencedError, 'the old owner is fenced off');
  await t.rejects(seams.log.announce(sid, epoch, Buffer.from('x')), FencedError);
  t.equal(await seams.leases.takeover(sid, 'n3', { node: 'n1', epoch }), null, 'a takeover from a stale holder fails');

  const record: SessionRecord = {
    sid, kind: 'echo', owner: 'admin', node: 'n2', epoch: taken!, status: 'running', cols: 80, rows: 24, policy: 'latest', onLoss: 'lost',
    cmd: null, args: [], cwd: null, env: {}, name: null, createdAt: 1, lastActivity: 1, clients: 0, exitCode: null, exitSignal: null, exitReason: null,
  };
  await seams.store.createSession(record);
  await t.rejects(seams.store.createSession(record), { code: 'conflict' }, 'a taken sid is refused');
  t.equal(await seams.store.updateSession(sid, epoch, { clients: 3 }), false, 'a stale epoch is refused by the store');
  t.equal(await seams.store.updateSession(sid, taken!, { clients: 3 }), true);
  t.equal((await seams.store.getSession(sid))?.clients, 3, 'reads pass through');
  t.equal(seams.store.isHealthy(), true, 'so do the synchronous methods');

  const text = await metrics.render('n1');
  t.equal(sample(text, 'switchboard_fenced_writes_total', 'seam="log"'), 2, 'two refused log writes');
  t.equal(sample(text, 'switchboard_fenced_writes_total', 'seam="store"'), 1, 'one refused store update');
  t.equal(sample(text, 'switchboard_takeovers_total'), 1, 'one successful takeover');
  t.equal(sample(text, 'switchboard_store_errors_total', 'op="createSession"'), 0, 'a conflict is an answer, not a store error');

  // A store that fails.
  const failing = instrumentSeams({ ...raw, store: Object.assign(Object.create(raw.store) as typeof raw.store, {
    getSession: () => Promise.reject(new Error('connection refused')),
  }) }, metrics, 'n1b');
  t.teardown(() => failing.close());
  await t.rejects(failing.store.getSession(sid), /connection refused/, 'the error reaches the caller');
  t.equal(sample(await metrics.render('n1'), 'switchboard_store_errors_total', 'op="getSession"'), 1, 'and is counted');
});

t.test('the bus probe measures publish to delivery, its own messages only', async (t) => {
  const bus = new MemoryBus();
  t.teardown(() => bus.close());
  const samples: number[] = [];
  let got!: () => void;
  const twoSamples = new Promise<void>((resolve) => (got = resolve));
  // The probe's timer is unref'ed (it never holds a node open): hold this test open.
  const keepAlive = setInterval(() => {}, 1_000);
  t.teardown(() => clearInterval(keepAlive));
  const probe = new BusProbe(bus, 'n1', (ms) => {
    samples.push(ms);
    if (samples.length === 2) got();
  }, 20);
  probe.start();
  t.teardown(() => probe.stop());
  // Someone else's message on the channel is not a sample.
  await bus.publish('sb:probe:{n1}', Buffer.from([0x81, 0xa1, 0x69, 0xa1, 0x78]));
  await twoSamples;
  t.ok(samples.every((ms) => ms >= 0 && ms < 60_000), `samples: ${samples.map((s) => s.toFixed(3)).join(', ')} ms`);
});

t.test('host metrics: the scaling signal', async (t) => {
  const metrics = new Metrics();
  const kinds: Record<string, string> = { a: 'pty', b: 'echo', c: 'pty' };
  instrumentHost(metrics, {
    count: 3,
    sessionIds: () => Object.keys(kinds),
    hosted: (sid: string) => ({ spec: { kind: kinds[sid] } }) as never,
  }, 12);
  const text = await metrics.render('h');
  t.equal(sample(text, 'switchboard_scaling_signal'), 0.25);
  t.equal(sample(text, 'switchboard_host_capacity'), 12);
  t.equal(sample(text, 'switchboard_pty_sessions'), 2);
});

t.test('a real node: keystrokes and opens through the edge', async (t) => {
  const server = await startNode();
  t.teardown(() => server.stop());
  const scrape = async (): Promise<string> => (await fetch(`${server.http}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
  const c = await TestClient.connect(server.url);
  t.teardown(() => c.close());

  const { sid: agent } = await c.request({ t: 'open', kind: 'agent', cmd: process.execPath, args: [AGENT] });
  c.send({ t: 'in', sid: agent, data: Buffer.from(JSON.stringify({ type: 'say', text: 'hi' })) });
  await c.waitForOutput(agent, 'said');
  let text = await scrape();
  t.equal(sample(text, 'switchboard_keystroke_seconds_count'), 0, 'agent input is not a keystroke');
  t.equal(sample(text, 'switchboard_open_seconds_count'), 1, 'the open was timed');

  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  for (let i = 1; i <= 3; i++) {
    c.send({ t: 'in', sid, data: Buffer.from('k') });
    await c.waitForBytes(sid, i);
  }
  text = await scrape();
  t.equal(sample(text, 'switchboard_keystroke_seconds_count'), 3, 'three keystrokes, three round trips');
  t.ok(sample(text, 'switchboard_keystroke_seconds_sum')! > 0, 'of some duration');
  t.equal(sample(text, 'switchboard_open_seconds_count'), 2);
  t.ok(server.node.metrics.keystrokeP99Ms()! > 0, 'the node has a p99 for its heartbeat');
  t.equal(server.node.nodeInfo().keystrokeP99Ms, server.node.metrics.keystrokeP99Ms(), 'and puts it in its registry entry');
  t.equal(sample(text, 'switchboard_bus_undecodable_total'), 0);
});

t.test('batched input follows the registry: off while an older host (no controlBatches) is live', async (t) => {
  const server = await startNode();
  t.teardown(() => server.stop());
  const scrape = async (): Promise<number | undefined> => sample(await (await fetch(`${server.http}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text(), 'switchboard_control_batching');
  const c = await TestClient.connect(server.url);
  t.teardown(() => c.close());
  // Every open reads the registry (placement), and so refreshes what the edge knows.
  await c.request({ t: 'open', kind: 'echo' });
  t.equal(await scrape(), 1, 'only hosts of this version: batches');
  const { controlBatches: _, ...older } = { ...server.node.nodeInfo(), id: 'older-host', role: 'host' as const, draining: true };
  await server.node.seams.registry.heartbeat(older, 60_000);
  await c.request({ t: 'open', kind: 'echo' });
  t.equal(await scrape(), 0, 'an older host is live: one message per publish');
  await server.node.seams.registry.remove('older-host');
  await c.request({ t: 'open', kind: 'echo' });
  t.equal(await scrape(), 1, 'it left: batches again');
});
