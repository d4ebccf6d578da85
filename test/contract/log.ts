/**
 * The SessionLog contract (src/log/log.ts), run against every implementation. The log
 * checks its fence against the Leases and publishes on the Bus of the same fixture.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Test } from 'tap';
import type { Bus } from '../../src/bus/bus.js';
import { sessionEvents } from '../../src/bus/channels.js';
import { FencedError, SwitchboardError } from '../../src/errors/errors.js';
import type { Leases } from '../../src/lease/leases.js';
import type { LogRead, SessionLog } from '../../src/log/log.js';
import { decodeMessage, encodeFrame } from '../../src/protocol/codec.js';
import { newSessionId, type Epoch, type Offset, type SessionId } from '../../src/util/ids.js';
import { until } from '../helpers/redis.js';

export interface LogFixture {
  log: SessionLog;
  leases: Leases;
  bus: Bus;
  close(): Promise<void>;
}

const ALL = 1 << 30;

const concat = (chunks: Uint8Array[]): Buffer => Buffer.concat(chunks);
const joined = (r: LogRead): Buffer => concat(r.chunks.map((c) => c.data));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Appends chunks back to back from the current head, pipelined. */
async function appendAll(log: SessionLog, sid: SessionId, epoch: Epoch, from: Offset, chunks: Uint8Array[]): Promise<Offset> {
  let off = from;
  const pending: Promise<void>[] = [];
  for (const c of chunks) {
    pending.push(log.append(sid, epoch, off, c));
    off += c.length;
  }
  await Promise.all(pending);
  return off;
}

/** Records the decoded frames published for a session. */
async function watch(bus: Bus, sid: SessionId) {
  const frames: Array<Record<string, unknown>> = [];
  const raw: Uint8Array[] = [];
  const off = await bus.subscribe(sessionEvents(sid), (payload) => {
    raw.push(payload);
    frames.push(decodeMessage(payload) as Record<string, unknown>);
  });
  return { frames, raw, off, upTo: (n: number) => until(() => frames.length >= n, `${n} frames`) };
}

const isConflict = (err: unknown): boolean =>
  err instanceof SwitchboardError && err.code === 'conflict' && !(err instanceof FencedError);
const isFenced = (err: unknown): boolean => err instanceof FencedError && err.code === 'conflict';

async function rejectsWith(t: Test, promise: Promise<unknown>, check: (err: unknown) => boolean, message: string): Promise<void> {
  try {
    await promise;
    t.fail(`${message}: resolved`);
  } catch (err) {
    t.ok(check(err), message, { error: err });
  }
}

export async function logContract(t: Test, make: (replayBytes: number) => Promise<LogFixture>): Promise<void> {
  const setup = async (t: Test, replayBytes = 1 << 20): Promise<LogFixture> => {
    const f = await make(replayBytes);
    t.teardown(() => f.close());
    await until(() => f.bus.isHealthy(), 'healthy bus');
    return f;
  };

  t.test('init makes the log exist, idempotently, at the head given', async (t) => {
    const { log, leases } = await setup(t);
    const sid = newSessionId();
    t.equal(await log.bounds(sid), null, 'never written, never inited: null');
    t.same(await log.read(sid, 0, ALL), { start: 0, head: 0, chunks: [] }, 'reading an unknown log returns nothing');
    await log.init(sid);
    t.same(await log.bounds(sid), { start: 0, head: 0 });
    const epoch = (await leases.claim(sid, 'n1'))!;
    await log.append(sid, epoch, 0, bytes('abc'));
    await log.init(sid);
    await log.init(sid, 50);
    t.same(await log.bounds(sid), { start: 0, head: 3 }, 'init does not reset a log');

    const resumed = newSessionId();
    await log.init(resumed, 100);
    t.same(await log.bounds(resumed), { start: 100, head: 100 });
    const e2 = (await leases.claim(resumed, 'n1'))!;
    await rejectsWith(t, log.append(resumed, e2, 0, bytes('x')), isConflict, 'offsets continue at the head');
    await log.append(resumed, e2, 100, bytes('hello'));
    t.same(await log.bounds(resumed), { start: 100, head: 105 });
    const r = await log.read(resumed, 0, ALL);
    t.same(r.gap, { from: 0, to: 100 });
    t.same(r.chunks.map((c) => c.off), [100]);
    t.equal(joined(r).toString(), 'hello');
  });

  t.test('append publishes each out frame, in order', async (t) => {
    const { log, leases, bus } = await setup(t);
    const sid = newSessionId();
    const w = await watch(bus, sid);
    const epoch = (await leases.claim(sid, 'n1'))!;
    const chunks = Array.from({ length: 50 }, (_, i) => randomBytes(i + 1));
    const head = await appendAll(log, sid, epoch, 0, chunks);
    await w.upTo(50);
    let off = 0;
    chunks.forEach((c, i) => {
      const f = w.frames[i]!;
      t.same({ t: f.t, sid: f.sid, off: f.off }, { t: 'out', sid, off }, `frame ${i} header`);
      t.ok(Buffer.from(f.data as Uint8Array).equals(c), `frame ${i} data`);
      off += c.length;
    });
    t.equal(w.raw[0]!.length, encodeFrame({ t: 'out', sid, off: 0, data: chunks[0]! }).length, 'the codec frame, as is');
    t.same(await log.bounds(sid), { start: 0, head });
    w.off();
  });

  t.test('writes of many sessions made together: each its own outcome, each session in order', async (t) => {
    const { log, leases, bus } = await setup(t);
    // 300 sessions (more than one script call carries), one fenced, one behind its head.
    const sids = Array.from({ length: 300 }, () => newSessionId());
    const epochs = await Promise.all(sids.map((sid) => leases.claim(sid, 'n1')));
    const fenced = sids[7]!;
    const stale = epochs[7]!;
    const taken = await leases.takeover(fenced, 'n2', { node: 'n1', epoch: stale });
    t.ok(taken !== null && taken > stale, 'session 7 taken over by n2');
    const behind = sids[11]!;
    await log.append(behind, epochs[11]!, 0, bytes('wxyz'));
    const w = await watch(bus, sids[0]!);
    // All in one synchronous run: two appends and an announcement per session.
    const outcomes = sids.map((sid, i) => Promise.allSettled([
      log.append(sid, epochs[i]!, 0, bytes(`a${i}`)),
      log.append(sid, epochs[i]!, 2 + String(i).length - 1, bytes('b')),
      log.announce(sid, epochs[i]!, encodeFrame({ t: 'resized', sid, cols: 80, rows: i + 1 })),
    ]));
    const settled = await Promise.all(outcomes);
    const ok = settled.filter((s, i) => i !== 7 && i !== 11 && s.every((r) => r.status === 'fulfilled'));
    t.equal(ok.length, 298, 'every other session: both appends and the announcement went through');
    t.ok(settled[7]!.every((r) => r.status === 'rejected' && isFenced(r.reason)), 'the taken-over session: all three fenced');
    t.ok(settled[11]!.slice(0, 2).every((r) => r.status === 'rejected' && isConflict(r.reason)), 'the session behind its head: both appends conflict');
    t.equal(settled[11]![2].status, 'fulfilled', '… its announcement goes through');
    t.same(await log.bounds(sids[299]!), { start: 0, head: 5 }, 'both chunks of session 299, at their offsets');
    t.same(await log.bounds(behind), { start: 0, head: 4 }, 'the conflicting session unchanged');
    t.equal(await log.bounds(fenced), null, 'the fenced session: nothing written');
    await w.upTo(3);
    t.same(w.frames.map((f) => f.t), ['out', 'out', 'resized'], 'session 0: its frames in the order made');
    t.same(w.frames.slice(0, 2).map((f) => f.off), [0, 2]);
    w.off();
  });

  t.test('an append not at the head is a conflict and changes nothing', async (t) => {
    const { log, leases, bus } = await setup(t);
    const sid = newSessionId();
    const w = await watch(bus, sid);
    const epoch = (await leases.claim(sid, 'n1'))!;
    await log.append(sid, epoch, 0, bytes('0123456789'));
    await rejectsWith(t, log.append(sid, epoch, 11, bytes('ahead')), isConflict, 'past the head');
    await rejectsWith(t, log.append(sid, epoch, 5, bytes('behind')), isConflict, 'behind the head');
    await rejectsWith(t, log.append(sid, epoch, 0, bytes('')), isConflict, 'even when empty');
    t.same(await log.bounds(sid), { start: 0, head: 10 });
    await log.append(sid, epoch, 10, bytes(''));
    t.same(await log.bounds(sid), { start: 0, head: 10 }, 'an empty append at the head is a no-op');
    await log.append(sid, epoch, 10, bytes('!'));
    await w.upTo(2);
    t.same(w.frames.map((f) => f.off), [0, 10], 'only the good appends were published');
    t.equal(joined(await log.read(sid, 0, ALL)).toString(), '0123456789!');
    w.off();
  });

  t.test('a fenced append or announce is rejected and writes nothing', async (t) => {
    const { log, leases, bus } = await setup(t);
    const sid = newSessionId();
    const w = await watch(bus, sid);
    const e1 = (await leases.claim(sid, 'n1'))!;
    await log.append(sid, e1, 0, bytes('one'));
    t.ok(await leases.release(sid, 'n1', e1));
    await rejectsWith(t, log.append(sid, e1, 3, bytes('nobody holds it')), (err) => isFenced(err) && (err as FencedError).current === null, 'no owner: fenced, and says there is no owner');
    const e2 = (await leases.takeover(sid, 'n2', null))!;
    t.ok(e2 > e1);
    await rejectsWith(t, log.append(sid, e1, 3, bytes('stale')), (err) => isFenced(err) && (err as FencedError).current === e2, 'stale epoch: fenced, naming the current epoch');
    await rejectsWith(t, log.append(sid, e1, 0, bytes('stale')), isFenced, 'the fence is checked before the head');
    await rejectsWith(t, log.announce(sid, e1, encodeFrame({ t: 'exit', sid, code: 1 })), isFenced, 'fenced announce');
    t.same(await log.bounds(sid), { start: 0, head: 3 }, 'head unchanged');
    t.equal(joined(await log.read(sid, 0, ALL)).toString(), 'one', 'bytes unchanged');

    await log.append(sid, e2, 3, bytes('two'));
    const owner = encodeFrame({ t: 'owner', sid, node: 'n2', epoch: e2 });
    await log.announce(sid, e2, owner);
    await w.upTo(3);
    t.same(w.frames.map((f) => f.t), ['out', 'out', 'owner'], 'nothing published by the fenced calls');
    t.same(w.frames.map((f) => f.off ?? null), [0, 3, null]);
    t.ok(Buffer.from(w.raw[2]!).equals(Buffer.from(owner)), 'announce publishes the frame bytes as given');
    w.off();
  });

  t.test('an append by the owner before a takeover is fenced after it', async (t) => {
    const { log, leases } = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.claim(sid, 'n1'))!;
    await log.init(sid, 0);
    await log.append(sid, epoch, 0, bytes('ok'));
    await leases.takeover(sid, 'n2', { node: 'n1', epoch });
    await rejectsWith(t, log.append(sid, epoch, 2, bytes('late')), isFenced, 'the paused ex-owner is refused');
    t.same(await log.bounds(sid), { start: 0, head: 2 });
  });

  t.test('replay is byte-exact from any offset', async (t) => {
    const { log, leases } = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.claim(sid, 'n1'))!;
    const chunks = Array.from({ length: 200 }, () => randomBytes(randomInt(1, 300)));
    const whole = concat(chunks);
    const head = await appendAll(log, sid, epoch, 0, chunks);
    t.equal(head, whole.length);
    let exact = 0;
    for (let from = 0; from <= head; from += 37) {
      const r = await log.read(sid, from, ALL);
      const ok = r.start === 0 && r.head === head && r.gap === undefined
        && (from === head ? r.chunks.length === 0 : r.chunks[0]!.off === from)
        && r.chunks.every((c, i) => i === 0 || c.off === r.chunks[i - 1]!.off + r.chunks[i - 1]!.data.length)
        && joined(r).equals(whole.subarray(from));
      if (ok) exact++;
      else t.fail(`read from ${from} is not exact`);
    }
    t.equal(exact, Math.floor(head / 37) + 1, 'every read exact');

    // Paging with a small maxBytes: each page is at least maxBytes (whole chunks) unless
    // it reaches the head, at most maxBytes plus one chunk.
    const pages: Buffer[] = [];
    for (let from = 5; from < head;) {
      const r = await log.read(sid, from, 100);
      const page = joined(r);
      if (page.length < Math.min(100, head - from) || page.length >= 100 + 300) t.fail(`page at ${from}: ${page.length} bytes`);
      pages.push(page);
      from += page.length;
    }
    t.ok(concat(pages).equals(whole.subarray(5)), 'pages concatenate to the log');
    t.same((await log.read(sid, head, ALL)).chunks, [], 'nothing at the head');
    t.same((await log.read(sid, head + 10, ALL)).chunks, [], 'nothing past the head');
  });

  t.test('trims whole chunks but keeps replayBytes; older reads report a gap', async (t) => {
    const replayBytes = 100;
    const { log, leases } = await setup(t, replayBytes);
    const sid = newSessionId();
    const epoch = (await leases.claim(sid, 'n1'))!;
    const chunks = Array.from({ length: 60 }, () => randomBytes(randomInt(5, 26)));
    const whole = concat(chunks);
    const head = await appendAll(log, sid, epoch, 0, chunks);
    // Expected start: the chunk holding offset head - replayBytes.
    let start = 0;
    for (const c of chunks) {
      if (start + c.length > head - replayBytes) break;
      start += c.length;
    }
    t.same(await log.bounds(sid), { start, head }, 'start is the chunk holding head - replayBytes');
    t.ok(head - start >= replayBytes, 'at least replayBytes kept');

    const r = await log.read(sid, 0, ALL);
    t.same(r.gap, { from: 0, to: start }, 'the gap names what is gone');
    t.equal(r.chunks[0]!.off, start);
    t.ok(joined(r).equals(whole.subarray(start)), 'the rest is exact');
    const inside = await log.read(sid, start + 1, ALL);
    t.equal(inside.gap, undefined);
    t.ok(joined(inside).equals(whole.subarray(start + 1)));

    // One chunk larger than the whole window is kept whole.
    const big = randomBytes(3 * replayBytes);
    await log.append(sid, epoch, head, big);
    t.same(await log.bounds(sid), { start: head, head: head + big.length });
    t.ok(joined(await log.read(sid, head + 7, ALL)).equals(big.subarray(7)));
  });

  t.test('retire lets the log expire', async (t) => {
    const { log, leases } = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.claim(sid, 'n1'))!;
    await log.append(sid, epoch, 0, bytes('bye'));
    await log.retire(sid, 30);
    await until(async () => (await log.bounds(sid)) === null, 'log expiry');
    t.same((await log.read(sid, 0, ALL)).chunks, []);
  });
}
