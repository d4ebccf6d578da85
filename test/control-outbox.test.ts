/**
 * ControlOutbox: input reaches a session's owner in the order the edge received it, also
 * across a takeover. The bus here answers each publish when the test says so: the race
 * it closes (a new owner subscribing while a reply is still on its way) depends on
 * timing a real bus does not let a test choose.
 */
import t from 'tap';
import { ControlOutbox, batch, type OutboxDeps } from '../src/edge/control-outbox.js';
import type { ClientConn } from '../src/edge/client-conn.js';
import { decodeMessage, encodeValue } from '../src/protocol/codec.js';

const client = { id: 1, closed: false } as unknown as ClientConn;
const msg = (text: string): Uint8Array => encodeValue({ t: 'in', data: text });

/** What one publish carried: its messages' texts, a batch flattened. */
function texts(payload: Uint8Array): string[] {
  const decoded = decodeMessage(payload) as { data: string } | Array<{ data: string }>;
  return Array.isArray(decoded) ? decoded.map((m) => m.data) : [decoded.data];
}

/** A bus whose publishes wait for the test to answer them, with a receiver count. */
function harness(opts: { batching?: boolean; maxQueued?: number } = {}) {
  const published: Array<{ texts: string[]; answer(receivers: number): Promise<void>; fail(err: Error): Promise<void> }> = [];
  const refused: string[] = [];
  const failed: string[] = [];
  let watching = true;
  const deps: OutboxDeps = {
    publish: (_sid, payload) => new Promise<number>((resolve, reject) => {
      // A turn of the event loop after the answer, so the outbox's reply handler has run.
      const settled = (): Promise<void> => new Promise((r) => setImmediate(r));
      published.push({
        texts: texts(payload),
        answer: (n) => { resolve(n); return settled(); },
        fail: (err) => { reject(err); return settled(); },
      });
    }),
    watches: () => watching,
    refuse: (item, _sid, why) => refused.push(`${texts(item.payload).join()}: ${why}`),
    busFailed: (item) => failed.push(texts(item.payload).join()),
  };
  const outbox = new ControlOutbox({ maxBytesPerSession: 1024, maxAgeMs: 10_000, maxQueuedBytesPerSession: opts.maxQueued ?? 4096 }, deps);
  outbox.batching = opts.batching ?? true;
  return { outbox, published, refused, failed, stopWatching: () => (watching = false) };
}

t.test('one publish in flight per session; what queued behind it leaves as one batch, in order', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('a'));
  h.outbox.send('s', client, msg('b'));
  h.outbox.send('s', client, msg('c'));
  h.outbox.send('other', client, msg('x'));
  t.same(h.published.map((p) => p.texts), [['a'], ['x']], 'b and c wait behind a; another session does not');
  await h.published[0]!.answer(1);
  t.same(h.published[2]!.texts, ['b', 'c'], 'then b and c together');
  await h.published[2]!.answer(1);
  await h.published[1]!.answer(1);
  t.equal(h.outbox.publishing, 0, 'nothing in flight');
  t.equal(h.published.length, 3);
  t.same(h.refused, []);
});

t.test('without batching (an older host is live): one message per publish, still in order', async (t) => {
  const h = harness({ batching: false });
  for (const x of ['a', 'b', 'c']) h.outbox.send('s', client, msg(x));
  await h.published[0]!.answer(1);
  await h.published[1]!.answer(1);
  await h.published[2]!.answer(1);
  t.same(h.published.map((p) => p.texts), [['a'], ['b'], ['c']]);
});

t.test('a takeover: what reached nobody and what queued behind it go to the new owner first', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('typed'));
  h.outbox.send('s', client, msg('while'));
  // Nobody was subscribed when `typed` was published. A new owner subscribes now, before
  // it announces: `while` must not reach it ahead of `typed` (it is not even sent yet).
  t.equal(h.published.length, 1, 'while waits for typed\'s reply');
  await h.published[0]!.answer(0);
  t.equal(h.outbox.holding, 1, 'held for the new owner');
  h.outbox.send('s', client, msg('down'));
  t.equal(h.published.length, 1, 'input typed while held is held behind it');
  h.outbox.ownerAnnounced('s');
  t.same(h.published[1]!.texts, ['typed', 'while', 'down'], 'released as one batch, in order');
  h.outbox.send('s', client, msg('after'));
  await h.published[1]!.answer(1);
  t.same(h.published[2]!.texts, ['after'], 'then what was typed since');
  t.same(h.refused, []);
});

t.test('the owner announced while the publish was on its way: sent again at once, not held', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('a'));
  h.outbox.ownerAnnounced('s');
  await h.published[0]!.answer(0);
  t.same(h.published[1]?.texts, ['a'], 'published again');
  t.equal(h.outbox.holding, 0, 'nothing held for an announcement that already came');
  await h.published[1]!.answer(1);
  t.same(h.refused, []);
});

t.test('released input that again reaches nobody is refused; what queued behind it goes on', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('a'));
  await h.published[0]!.answer(0);
  h.outbox.ownerAnnounced('s');
  h.outbox.send('s', client, msg('b'));
  await h.published[1]!.answer(0);
  t.match(h.refused, [/^a: no node runs the session right now/], 'a is refused: said, not dropped');
  t.same(h.published[2]!.texts, ['b'], 'b is published');
  await h.published[2]!.answer(0);
  t.equal(h.outbox.holding, 1, 'and held, being new input');
});

t.test('bounds and failures: a full queue refuses, a bus error is reported and the rest goes on', async (t) => {
  const h = harness({ maxQueued: 40 });
  h.outbox.send('s', client, msg('a'));
  h.outbox.send('s', client, msg('b'.repeat(20)));
  h.outbox.send('s', client, msg('c'.repeat(20)));
  t.match(h.refused, [/^c+: more than 40 bytes of input wait for the message bus/], 'beyond the queue bound: refused at once');
  await h.published[0]!.fail(new Error('down'));
  t.same(h.failed, ['a'], 'the client of a is told');
  t.same(h.published[1]!.texts, ['b'.repeat(20)], 'b still goes');
  await h.published[1]!.answer(1);
  t.equal(h.outbox.publishing, 0);
});

t.test('an ended session: what reaches nobody is refused with the reason, not held', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('a'));
  h.outbox.drop('s', 'the session ended');
  await h.published[0]!.answer(0);
  t.match(h.refused, [/^a: the session ended/]);
  t.equal(h.outbox.holding, 0);

  const g = harness();
  g.stopWatching();
  g.outbox.send('s', client, msg('b'));
  await g.published[0]!.answer(0);
  t.match(g.refused, [/^b: no node runs the session right now/], 'nobody here watches it: refused');
  t.equal(g.outbox.tracked, 0, 'and not kept: no drop() comes for a session never watched');
});

t.test('batch(): one MessagePack array of the messages, for every array header size', async (t) => {
  for (const n of [2, 15, 16, 65_535, 65_536]) {
    const items = Array.from({ length: n }, (_, i) => ({ client, payload: encodeValue({ t: 'in', data: String(i) }) }));
    const decoded = decodeMessage(batch(items)) as Array<{ data: string }>;
    t.equal(decoded.length, n, `${n} messages`);
    t.equal(decoded[n - 1]!.data, String(n - 1), 'the last one intact');
  }
});

t.test('a publish that throws is a failed publish: reported, and the session is not left in flight', async (t) => {
  const failed: string[] = [];
  let calls = 0;
  const outbox = new ControlOutbox({ maxBytesPerSession: 1024, maxAgeMs: 10_000, maxQueuedBytesPerSession: 4096 }, {
    publish: () => {
      if (++calls === 1) throw new Error('closed');
      return Promise.resolve(1);
    },
    watches: () => true,
    refuse: () => {},
    busFailed: (item) => failed.push(texts(item.payload).join()),
  });
  outbox.send('s', client, msg('a'));
  t.same(failed, ['a']);
  t.equal(outbox.publishing, 0);
  outbox.send('s', client, msg('b'));
  await new Promise((r) => setImmediate(r));
  t.equal(calls, 2, 'the next input is published');
  t.equal(outbox.publishing, 0);
});

t.test('a session is tracked while watched, forgotten once dropped and nothing is in flight', async (t) => {
  const h = harness();
  h.outbox.send('s', client, msg('a'));
  await h.published[0]!.answer(1);
  t.equal(h.outbox.tracked, 1, 'kept for the next keystroke');
  h.outbox.drop('s', 'no client here watches the session any more');
  t.equal(h.outbox.tracked, 0, 'dropped: forgotten');

  h.outbox.send('s', client, msg('b'));
  h.outbox.drop('s', 'no client here watches the session any more');
  t.equal(h.outbox.tracked, 1, 'in flight: kept until its reply');
  await h.published[1]!.answer(1);
  t.equal(h.outbox.tracked, 0, 'then forgotten');
  t.same(h.refused, []);
});
