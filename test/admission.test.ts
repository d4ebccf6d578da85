/**
 * What an edge admits under load: placements and screen snapshots through bounded
 * queues (`unavailable`, temporary, with a retry hint beyond them), frames held per
 * connection (bounded, `rate_limited` then 1008), terminal sizes (bounded).
 *
 * Overload is made deterministic by holding the registry or the log closed (a latch in
 * front of the memory seam), instead of by racing timers.
 */
import t from 'tap';
import type { Config } from '../src/config/config.js';
import { loadConfig } from '../src/config/config.js';
import { memorySeams, type Seams } from '../src/node/wiring.js';
import { startNode, TEST_TOKEN, type TestNode } from './helpers/node.js';
import { TestClient, type Frame } from './helpers/ws.js';

/** Closed: every wait() waits until open(). Open: wait() passes. */
class Latch {
  private gate: Promise<void> | undefined;
  private release: (() => void) | undefined;
  close(): void {
    if (!this.gate) this.gate = new Promise((resolve) => (this.release = resolve));
  }
  open(): void {
    this.release?.();
    this.gate = undefined;
  }
  wait(): Promise<void> | undefined {
    return this.gate;
  }
}

interface Latched {
  registry: Latch;
  log: Latch;
}

function latchedSeams(latches: Latched): (config: Config) => Seams {
  return (config) => {
    const seams = memorySeams(config);
    const list = seams.registry.list.bind(seams.registry);
    seams.registry.list = async () => {
      await latches.registry.wait();
      return list();
    };
    const read = seams.log.read.bind(seams.log);
    seams.log.read = async (sid, from, maxBytes) => {
      await latches.log.wait();
      return read(sid, from, maxBytes);
    };
    return seams;
  };
}

function isTemporaryUnavailable(f: Frame): boolean {
  return f.t === 'error' && f.code === 'unavailable' && f.temporary === true && typeof f.retryMs === 'number' && f.retryMs > 0;
}

async function connectMany(url: string, n: number): Promise<TestClient[]> {
  return Promise.all(Array.from({ length: n }, () => TestClient.connect(url)));
}

t.test('opens beyond the placement limits: only opened or unavailable', async (t) => {
  const latches: Latched = { registry: new Latch(), log: new Latch() };
  const server = await startNode(['--open-concurrency', '2', '--open-queue', '3'], latchedSeams(latches));
  t.teardown(() => server.stop());

  t.test('held placements: exactly concurrency + queue admitted', async (t) => {
    const clients = await connectMany(server.url, 12);
    latches.registry.close();
    const settled: Frame[] = [];
    let onSettle = (): void => {};
    const replies = clients.map((c) => c.next((f) => f.ref === 1).then((f) => {
      settled.push(f);
      onSettle();
      return f;
    }));
    for (const c of clients) c.send({ t: 'open', ref: 1, kind: 'echo' });
    // Refusals come at once; the admitted five wait for the registry.
    await new Promise<void>((resolve) => {
      onSettle = () => {
        if (settled.length >= 7) resolve();
      };
      onSettle();
    });
    t.equal(settled.length, 7, 'seven answered while the registry is held');
    t.ok(settled.every(isTemporaryUnavailable), 'each refusal is unavailable, temporary, with retryMs');
    t.match(settled[0]!.msg, /retry in \d+ ms/);
    latches.registry.open();
    const all = await Promise.all(replies);
    t.equal(all.filter((f) => f.t === 'opened').length, 5, 'two running + three queued were placed');
    t.ok(all.every((f) => f.t === 'opened' || isTemporaryUnavailable(f)), 'nothing but opened or unavailable');
    for (const c of clients) c.close();
  });

  t.test('an unheld burst, pipelined on many connections', async (t) => {
    const clients = await connectMany(server.url, 40);
    const replies: Array<Promise<Frame>> = [];
    for (const c of clients) {
      for (let ref = 1; ref <= 5; ref++) {
        replies.push(c.next((f) => f.ref === ref));
        c.send({ t: 'open', ref, kind: 'echo' });
      }
    }
    const all = await Promise.all(replies);
    const others = all.filter((f) => f.t !== 'opened' && !isTemporaryUnavailable(f));
    t.same(others, [], 'only opened or unavailable (temporary, retryMs)');
    t.ok(all.some((f) => f.t === 'opened'), 'some were placed');
    for (const c of clients) c.close();
  });
});

t.test('frames held behind a pending open are bounded: rate_limited, then 1008', async (t) => {
  const latches: Latched = { registry: new Latch(), log: new Latch() };
  const server = await startNode([], latchedSeams(latches));
  t.teardown(() => server.stop());
  const c = await TestClient.connect(server.url);
  const { sid } = await c.request({ t: 'open', kind: 'echo' });
  latches.registry.close();
  c.send({ t: 'open', ref: 101, kind: 'echo' });
  const data = Buffer.alloc(8 * 1024, 0x61);
  for (let n = 0; n < 40; n++) c.send({ t: 'in', sid, data, n });
  const ping = c.next((f) => f.ref === 102);
  c.send({ t: 'ping', ref: 102 });
  const limited = (): Frame[] => c.frames.filter((f) => f.t === 'error' && f.code === 'rate_limited');
  // Nothing is released while the open waits: everything past the bytes bound is refused.
  while (limited().length === 0) await c.next((f) => f.t === 'error');
  const refusedFirst = limited();
  t.ok(refusedFirst.every((f) => f.sid === sid && f.temporary === true), 'rate_limited, temporary, naming the session');
  t.notOk(c.frames.some((f) => f.ref === 101 || f.ref === 102), 'the open and the ping behind it are still pending');
  latches.registry.open();
  t.equal((await c.seen((f) => f.ref === 101)).t, 'opened');
  t.equal((await ping).t, 'pong', 'the ping was held, not refused');
  await c.seen((f) => f.t === 'ack' && f.n === 40 - limited().length - 1);
  const acks = c.frames.filter((f) => f.t === 'ack').map((f) => f.n);
  t.same(acks, Array.from({ length: 40 - limited().length }, (_, i) => i), 'held frames ran in order; refused ones never did');

  // Persistent abuse: keep overflowing while an open is pending.
  latches.registry.close();
  c.send({ t: 'open', ref: 103, kind: 'echo' });
  for (let n = 0; n < 200; n++) c.send({ t: 'in', sid, data });
  t.equal((await c.closed).code, 1008);
  latches.registry.open();
});

t.test('terminal size is bounded in open, resize and POST /v1/sessions', async (t) => {
  const server = await startNode(['--max-cols', '120', '--max-rows', '50']);
  t.teardown(() => server.stop());
  const c = await TestClient.connect(server.url);
  const wide = await c.request({ t: 'open', kind: 'echo', cols: 121 }).catch((e) => e);
  t.equal(wide.code, 'too_large');
  t.match(wide.message, /120 columns \(SWITCHBOARD_MAX_COLS\)/);
  const { sid } = await c.request({ t: 'open', kind: 'echo', cols: 120, rows: 50 });
  const err = c.next((f) => f.t === 'error');
  c.send({ t: 'resize', sid, cols: 100, rows: 51 });
  t.match(await err, { code: 'too_large', sid, temporary: false, msg: /50 rows \(SWITCHBOARD_MAX_ROWS\)/ });
  const res = await fetch(`${server.http}/v1/sessions`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'echo', rows: 60 }),
  });
  t.equal(res.status, 413);
  t.match(await res.json(), { error: 'too_large' });
  c.close();
  t.throws(() => loadConfig(['--max-cols', '5000'], {}), /SWITCHBOARD_MAX_COLS: must be 80-1000/);
  t.throws(() => loadConfig([], { SWITCHBOARD_MAX_ROWS: '10' }), /SWITCHBOARD_MAX_ROWS: must be 24-1000/);
});

t.test('snapshots beyond the node-wide queue: unavailable; one per connection at a time', async (t) => {
  const latches: Latched = { registry: new Latch(), log: new Latch() };
  const server = await startNode(['--snapshot-workers', '1', '--snapshot-queue', '2'], latchedSeams(latches));
  t.teardown(() => server.stop());
  const owner = await TestClient.connect(server.url);
  const sids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const { sid } = await owner.request({ t: 'open', cmd: '/bin/sh' });
    owner.send({ t: 'in', sid, data: Buffer.from(`echo ready-$((${i}+40))\n`) });
    await owner.waitForOutput(sid, `ready-${i + 40}\r\n`);
    sids.push(sid);
  }

  t.test('one worker + two waiting, the rest refused', async (t) => {
    const clients = await connectMany(server.url, 8);
    latches.log.close(); // the running snapshot waits for its log read
    const replies = clients.map((c) => c.next((f) => f.ref === 1));
    for (const c of clients) c.send({ t: 'attach', ref: 1, sid: sids[0] });
    const all = await Promise.all(replies);
    const admitted = clients.filter((_, i) => all[i]!.t === 'attached');
    t.equal(admitted.length, 3, 'three attached');
    t.equal(all.filter(isTemporaryUnavailable).length, 5, 'five refused: unavailable, temporary, retryMs');
    t.match(all.find((f) => f.t === 'error')!.msg, /attach with from/);
    t.notOk(admitted.some((c) => c.frames.some((f) => f.t === 'out')), 'no output before the snapshot');
    latches.log.open();
    for (const c of admitted) t.ok((await c.seen((f) => f.t === 'out' && f.snap)).data.length > 0, 'snapshot');
    for (const c of clients) c.close();
  });

  t.test('a second attach on the same connection waits for the first snapshot', async (t) => {
    const c = await TestClient.connect(server.url);
    latches.log.close();
    c.send({ t: 'attach', ref: 1, sid: sids[0] });
    c.send({ t: 'attach', ref: 2, sid: sids[1] });
    c.send({ t: 'ping', ref: 3 });
    await c.seen((f) => f.ref === 1);
    const pinger = await TestClient.connect(server.url);
    t.equal((await pinger.request({ t: 'ping' })).t, 'pong', 'other connections are served meanwhile');
    t.notOk(c.frames.some((f) => f.ref === 2 || f.ref === 3), 'the second attach and the ping behind it wait');
    latches.log.open();
    await c.seen((f) => f.ref === 3);
    const at = (pred: (f: Frame) => boolean): number => c.frames.findIndex(pred);
    const snap0 = at((f) => f.t === 'out' && f.snap && f.sid === sids[0]);
    t.ok(snap0 >= 0 && snap0 < at((f) => f.ref === 2), 'first snapshot, then the second attached');
    t.ok(at((f) => f.ref === 2) < at((f) => f.ref === 3), 'then the ping');
    await c.seen((f) => f.t === 'out' && f.snap && f.sid === sids[1]);
    c.close();
    pinger.close();
  });
});

t.test('snapshots of a large terminal run off the event loop', async (t) => {
  const server = await startNode(['--frame-rate', '1000000']);
  t.teardown(() => server.stop());
  const owner = await TestClient.connect(server.url);
  const { sid } = await owner.request({ t: 'open', cmd: '/bin/sh', args: ['-c', 'seq 1 100000; exec cat'], cols: 500, rows: 200 });
  await owner.waitForOutput(sid, '\n100000\r\n', 30_000);
  const clients = await connectMany(server.url, 10);
  const pinger = await TestClient.connect(server.url);
  let pongs = 0;
  let done = false;
  const pinging = (async () => {
    while (!done) {
      await pinger.request({ t: 'ping' });
      pongs++;
    }
  })();
  const results = clients.map((c) => {
    const snap = c.next((f) => (f.t === 'out' && f.snap) || f.t === 'error', 60_000);
    c.send({ t: 'attach', ref: 1, sid });
    return snap;
  });
  const pongsAt: number[] = [];
  for (const r of results) void r.then(() => pongsAt.push(pongs));
  const all = await Promise.all(results);
  done = true;
  await pinging;
  t.ok(all.every((f) => (f.t === 'out' && f.data.length > 0) || isTemporaryUnavailable(f)), 'each attach: its snapshot or unavailable');
  t.ok(all.some((f) => f.t === 'out'), 'snapshots were computed');
  const last = Math.max(...pongsAt);
  t.ok(last > all.length, `pings kept being answered while the snapshots were computed (${last} pongs before the last snapshot)`);
  for (const c of clients) c.close();
  owner.send({ t: 'kill', ref: 9, sid, signal: 'SIGKILL' });
  await owner.next((f) => f.t === 'exit');
  owner.close();
  pinger.close();
});
