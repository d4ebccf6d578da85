/**
 * The protocol client core (src/client/core.ts) and SessionLink (src/client/link.ts)
 * without sockets: a scripted transport plays the server, so ref matching, offsets,
 * acks, resume with `from` and the retry rule's effects are checked frame by frame.
 */
import t from 'tap';
import { decodeMessage, encodeValue } from '../src/protocol/codec.js';
import { ClientCore, newClientSessionId, SessionOutput, SwitchboardClientError } from '../src/client/core.js';
import { SessionLink, type LinkEnd, type TransportHandlers } from '../src/client/link.js';
import type { RetryCause } from '../src/client/retry.js';

type Frame = Record<string, any>;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A core wired to a list of the frames it sent; `nextSent()` resolves with the next one. */
function wired(options: ConstructorParameters<typeof ClientCore>[1] = {}) {
  const sent: Frame[] = [];
  let waiter: ((f: Frame) => void) | undefined;
  const core = new ClientCore({}, options);
  core.transportUp((b) => {
    const f = decodeMessage(b) as Frame;
    sent.push(f);
    waiter?.(f);
    waiter = undefined;
  });
  return {
    core,
    sent,
    deliver: (f: Frame): unknown => core.receive(encodeValue(f)),
    nextSent: (): Promise<Frame> => new Promise((resolve) => (waiter = resolve)),
  };
}

t.test('requests are matched to replies by ref, in any order; errors carry the rule inputs', async (t) => {
  const { core, sent, deliver } = wired();
  const ping = core.request({ t: 'ping' });
  const attach = core.request({ t: 'attach', sid: 'S'.repeat(22), from: 5 });
  const open = core.request({ t: 'open', kind: 'echo' });
  t.same(sent.map((f) => [f.t, f.ref]), [['ping', 1], ['attach', 2], ['open', 3]]);
  deliver({ t: 'error', ref: 3, code: 'unavailable', msg: 'busy', temporary: true, retryMs: 700 });
  deliver({ t: 'pong', ref: 1, node: 'n', ts: 1 });
  deliver({ t: 'attached', ref: 2, sid: 'S'.repeat(22), head: 9, node: 'n', cols: 80, rows: 24 });
  t.equal((await ping).t, 'pong');
  t.equal((await attach).head, 9);
  t.equal(core.session('S'.repeat(22)).next, 5, 'attach with from: output resumes there');
  const err = (await open.catch((e: unknown) => e)) as SwitchboardClientError;
  t.ok(err instanceof SwitchboardClientError);
  t.match(err, { code: 'unavailable', message: 'unavailable: busy', temporary: true, retryMs: 700 });
  const lost = core.request({ t: 'ping' });
  core.transportDown(new SwitchboardClientError('unavailable', 'socket closed (1006)', undefined, { kind: 'close', code: 1006, reason: '' }));
  await t.rejects(lost, { code: 'unavailable', message: /socket closed \(1006\) before the reply to ref 4/, temporary: true });
  await t.rejects(core.request({ t: 'ping' }), { code: 'unavailable' }, 'no transport: refused at once');
  const slow = wired({ timeoutMs: 5 }).core.request({ t: 'ping' });
  await t.rejects(slow, { code: 'unavailable', message: /no reply to 'ping'/, temporary: true });
});

t.test('offsets: overlaps trimmed, jumps counted, gaps advance, snapshots do not', async (t) => {
  const outputs: Array<[string, number, boolean]> = [];
  const core = new ClientCore({ output: (_s, data, end, snap) => outputs.push([text(data), end, snap]) });
  core.transportUp(() => {});
  const sid = 'A'.repeat(22);
  const out = (off: number, s: string, snap?: true): unknown => core.receive(encodeValue({ t: 'out', sid, off, data: bytes(s), ...(snap ? { snap } : {}) }));
  out(10, 'SCREEN', true);
  out(10, 'abc');
  out(11, 'bcde'); // replay overlapping what we have
  out(12, 'cd'); // nothing new: no output event
  out(17, 'hi'); // a jump without a gap frame
  core.receive(encodeValue({ t: 'gap', sid, from: 19, to: 30 }));
  out(30, 'z');
  const s = core.session(sid);
  t.same(outputs, [['SCREEN', 10, true], ['abc', 13, false], ['de', 15, false], ['hi', 19, false], ['z', 31, false]]);
  t.equal(text(s.bytes()), 'abcdehiz');
  t.equal(s.text(), 'abcdehiz');
  t.match(s, { start: 10, next: 31, duplicateBytes: 4, missingBytes: 2, gapBytes: 11 });
  t.same(s.gaps, [{ from: 19, to: 30 }]);
  t.equal(text(s.snapshot!), 'SCREEN');
  core.receive(encodeValue({ t: 'exit', sid, code: 0, signal: 'SIGHUP' }));
  t.same(s.exit, { code: 0, signal: 'SIGHUP' });
  t.equal(core.receive(encodeValue([1, 2])), undefined, 'not a frame');
  t.equal(core.receive(new Uint8Array([0xc1])), undefined, 'not MessagePack');
  const offsetsOnly = new SessionOutput(sid, false);
  offsetsOnly.push(0, bytes('xyz'), false);
  t.match(offsetsOnly, { next: 3, length: 3, chunks: [] });
});

t.test('acks: the first at once, then every ackBytes, the rest after ackDelayMs; only while attached', async (t) => {
  const { core, sent, deliver, nextSent } = wired({ ackBytes: 100, ackDelayMs: 5 });
  const sid = 'B'.repeat(22);
  core.session(sid);
  core.consumed(sid, 10);
  t.same(sent, [], 'not attached on this transport: nothing sent');
  deliver({ t: 'opened', ref: 99, sid, node: 'n' });
  t.same(sent, [{ t: 'ack', sid, off: 10 }], 'attaching flushes what was consumed');
  core.consumed(sid, 60);
  core.consumed(sid, 109);
  t.equal(sent.length, 1, 'under ackBytes: waits');
  core.consumed(sid, 110);
  t.same(sent[1], { t: 'ack', sid, off: 110 });
  const delayed = nextSent();
  core.consumed(sid, 150);
  t.equal(sent.length, 2);
  t.same(await delayed, { t: 'ack', sid, off: 150 }, 'the tail, after ackDelayMs');
});

t.test('client session ids look like the server ones', async (t) => {
  const ids = new Set(Array.from({ length: 200 }, newClientSessionId));
  t.equal(ids.size, 200);
  for (const id of ids) if (!/^[A-Za-z0-9_-]{22}$/.test(id)) t.fail(id);
});

// ─── SessionLink against a scripted server ────────────────────────────────────

class FakeConn {
  readonly sent: Frame[] = [];
  closedByClient = false;
  private waiters: Array<() => void> = [];
  constructor(readonly handlers: TransportHandlers) {}
  open(): void {
    this.handlers.open();
  }
  deliver(f: Frame): void {
    this.handlers.message(encodeValue(f));
  }
  end(why: RetryCause): void {
    this.handlers.closed(why);
  }
  /** The next frame the client sends (from `index` on). */
  async frame(index: number): Promise<Frame> {
    while (this.sent.length <= index) await new Promise<void>((r) => this.waiters.push(r));
    return this.sent[index]!;
  }
  push(f: Frame): void {
    this.sent.push(f);
    for (const w of this.waiters.splice(0)) w();
  }
}

/** A dial whose connections the test takes one by one. */
function fakeServer(): { dial: (h: TransportHandlers) => { send(b: Uint8Array): void; close(): void }; next(): Promise<FakeConn>; dials: number } {
  const conns: FakeConn[] = [];
  const waiters: Array<() => void> = [];
  let taken = 0;
  const server = {
    dials: 0,
    dial: (h: TransportHandlers) => {
      const c = new FakeConn(h);
      conns.push(c);
      server.dials++;
      for (const w of waiters.splice(0)) w();
      return { send: (b: Uint8Array) => c.push(decodeMessage(b) as Frame), close: () => (c.closedByClient = true) };
    },
    async next(): Promise<FakeConn> {
      while (conns.length <= taken) await new Promise<void>((r) => waiters.push(r));
      return conns[taken++]!;
    },
  };
  return server;
}

function linkOn(server: ReturnType<typeof fakeServer>, extra: Partial<ConstructorParameters<typeof SessionLink>[0]> = {}) {
  const output: string[] = [];
  const waits: Array<{ delayMs: number; why: string }> = [];
  const notices: string[] = [];
  let resolveEnd!: (e: LinkEnd) => void;
  const ended = new Promise<LinkEnd>((r) => (resolveEnd = r));
  const waiters: Array<{ event: string; resolve: () => void }> = [];
  const happened = (event: string): void => {
    for (const w of waiters.filter((x) => x.event === event)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const link = new SessionLink({
    dial: server.dial,
    open: () => ({ kind: 'pty', cols: 80, rows: 24 }),
    size: () => ({ cols: 80, rows: 24 }),
    random: () => 0,
    policy: { baseMs: 2, maxMs: 8, maxHintMs: 1000 },
    ...extra,
    events: {
      output: (data, end) => {
        output.push(text(data));
        link.consumed(end);
      },
      live: () => happened('live'),
      waiting: (w) => {
        waits.push(w);
        happened('waiting');
      },
      notice: (n) => notices.push(n),
      ended: resolveEnd,
    },
  });
  /** Resolves when the link next reports `event` (register before causing it). */
  const next = (event: 'live' | 'waiting'): Promise<void> => new Promise((resolve) => waiters.push({ event, resolve }));
  return { link, output, waits, notices, ended, next };
}

t.test('link: opens with its own sid, resumes from the next offset after a drop, sends queued input', async (t) => {
  const server = fakeServer();
  const { link, output, waits } = linkOn(server);
  link.start();
  const c1 = await server.next();
  link.input(bytes('early'));
  c1.open();
  const open = await c1.frame(0);
  t.match(open, { t: 'open', kind: 'pty', cols: 80, rows: 24, sid: link.sid });
  c1.deliver({ t: 'opened', ref: open.ref, sid: link.sid, node: 'n1' });
  await t.resolves(c1.frame(1));
  t.same(c1.sent[1], { t: 'in', sid: link.sid, data: bytes('early') }, 'input typed while connecting');
  t.equal(link.phase, 'live');
  c1.deliver({ t: 'out', sid: link.sid, off: 0, data: bytes('hello ') });
  c1.deliver({ t: 'out', sid: link.sid, off: 6, data: bytes('world') });
  c1.end({ kind: 'close', code: 1006, reason: '' });
  t.equal(link.phase, 'waiting');
  t.match(waits[0], { delayMs: 1, why: 'connection closed (1006)' });
  link.input(bytes('while away'));
  const c2 = await server.next();
  c2.open();
  const attach = await c2.frame(0);
  t.match(attach, { t: 'attach', sid: link.sid, from: 11, role: 'writer' });
  c2.deliver({ t: 'attached', ref: attach.ref, sid: link.sid, head: 14, node: 'n2', cols: 80, rows: 24 });
  c2.deliver({ t: 'out', sid: link.sid, off: 11, data: bytes('!!!') });
  t.same(output, ['hello ', 'world', '!!!'], 'nothing lost, nothing repeated');
  const afterAttach = await c2.frame(1);
  const rest = [afterAttach, await c2.frame(2)];
  t.same(rest.find((f) => f.t === 'in'), { t: 'in', sid: link.sid, data: bytes('while away') });
  t.same(rest.find((f) => f.t === 'ack'), { t: 'ack', sid: link.sid, off: 11 }, 'the new connection is told what was consumed');
  t.equal(link.node, 'n2');
  link.stop();
  t.ok(c2.closedByClient);
});

t.test('link: bye waits for retryMs; a temporary refusal waits for its hint; a permanent one ends', async (t) => {
  const server = fakeServer();
  const sid = 'C'.repeat(22);
  const { link, waits, ended, next } = linkOn(server, { sid });
  link.start();
  const c1 = await server.next();
  c1.open();
  t.match(await c1.frame(0), { t: 'attach', sid, role: 'writer' });
  t.notOk('from' in c1.sent[0]!, 'a first attach has no from: a screen snapshot');
  c1.deliver({ t: 'attached', ref: c1.sent[0]!.ref, sid, head: 3, node: 'n1', cols: 80, rows: 24 });
  c1.deliver({ t: 'out', sid, off: 0, data: bytes('abc') });
  c1.deliver({ t: 'bye', reason: 'draining', retryMs: 30 });
  t.ok(c1.closedByClient, 'the client closes after bye');
  t.match(waits.at(-1), { delayMs: 30, why: 'the node is draining' });

  const c2 = await server.next();
  c2.open();
  const a2 = await c2.frame(0);
  t.match(a2, { t: 'attach', from: 3 });
  const refused = next('waiting');
  c2.deliver({ t: 'error', ref: a2.ref, sid, code: 'unavailable', msg: 'busy with snapshots', temporary: true, retryMs: 20 });
  await refused;
  t.match(waits.at(-1), { delayMs: 20, why: 'unavailable: busy with snapshots' });

  const c3 = await server.next();
  c3.open();
  const a3 = await c3.frame(0);
  c3.deliver({ t: 'error', ref: a3.ref, sid, code: 'forbidden', msg: 'not your session', temporary: false });
  t.same(await ended, { failure: { code: 'forbidden', message: 'forbidden: not your session' } });
  t.equal(link.phase, 'done');
  t.equal(server.dials, 3, 'no retry after a permanent refusal');
});

t.test('link: a retried open that took effect the first time becomes an attach from 0', async (t) => {
  const server = fakeServer();
  const { link, output, next } = linkOn(server);
  link.start();
  const c1 = await server.next();
  c1.open();
  await c1.frame(0);
  c1.end({ kind: 'close', code: 1006, reason: '' }); // the reply was lost with the connection
  const c2 = await server.next();
  c2.open();
  const open2 = await c2.frame(0);
  t.match(open2, { t: 'open', sid: link.sid });
  c2.deliver({ t: 'error', ref: open2.ref, sid: link.sid, code: 'conflict', msg: 'taken', temporary: false });
  const attach = await c2.frame(1);
  t.match(attach, { t: 'attach', sid: link.sid, from: 0 });
  const live = next('live');
  c2.deliver({ t: 'attached', ref: attach.ref, sid: link.sid, head: 2, node: 'n', cols: 80, rows: 24 });
  c2.deliver({ t: 'out', sid: link.sid, off: 0, data: bytes('$ ') });
  await live;
  t.same(output, ['$ ']);
  t.equal(link.phase, 'live');
  link.stop();
});

t.test('link: exit ends it; an unreachable first dial ends it when asked to', async (t) => {
  const server = fakeServer();
  const sid = 'D'.repeat(22);
  const { link, ended } = linkOn(server, { sid });
  link.start();
  const c1 = await server.next();
  c1.open();
  c1.deliver({ t: 'attached', ref: (await c1.frame(0)).ref, sid, head: 0, node: 'n', cols: 100, rows: 24 });
  t.match(await c1.frame(1), { t: 'resize', sid, cols: 80, rows: 24 }, 'the local size wins');
  c1.deliver({ t: 'exit', sid, code: 3 });
  t.same(await ended, { exit: { code: 3 } });

  const other = fakeServer();
  const strict = linkOn(other, { retryFirstDial: false });
  strict.link.start();
  (await other.next()).end({ kind: 'unreachable', message: 'cannot reach x: connection refused' });
  t.same(await strict.ended, { failure: { code: 'unavailable', message: 'cannot reach x: connection refused' } });
});
