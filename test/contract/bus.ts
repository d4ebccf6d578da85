/**
 * The Bus contract (src/bus/bus.ts), run against every implementation.
 * A fixture is two nodes' views of one bus; in memory both are the same instance.
 */
import type { Test } from 'tap';
import type { Bus, BusHandler } from '../../src/bus/bus.js';
import { sessionControl, sessionEvents } from '../../src/bus/channels.js';
import { newSessionId } from '../../src/util/ids.js';
import { until } from '../helpers/redis.js';

export interface BusFixture {
  a: Bus;
  b: Bus;
  close(): Promise<void>;
}

/** Collects payloads; `upTo(n)` waits until n arrived. */
function collector() {
  const got: Uint8Array[] = [];
  const handler: BusHandler = (payload) => {
    got.push(payload);
  };
  return { got, handler, upTo: (n: number) => until(() => got.length >= n, `${n} messages`) };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

export async function busContract(t: Test, make: () => Promise<BusFixture>): Promise<void> {
  const setup = async (t: Test): Promise<BusFixture> => {
    const f = await make();
    t.teardown(() => f.close());
    await until(() => f.a.isHealthy() && f.b.isHealthy(), 'healthy bus');
    return f;
  };

  t.test('delivers across nodes in publish order, bytes intact', async (t) => {
    const { a, b } = await setup(t);
    const channel = sessionEvents(newSessionId());
    const c = collector();
    await b.subscribe(channel, c.handler);
    const sent = Array.from({ length: 200 }, (_, i) => bytes(`message ${i} `.repeat(i % 7 + 1)));
    await Promise.all(sent.map((m) => a.publish(channel, m)));
    await c.upTo(200);
    t.equal(c.got.length, 200);
    t.same(c.got.map(text), sent.map(text), 'same messages, same order');
    t.ok(c.got.every((p) => p instanceof Uint8Array), 'payloads are Uint8Array');
  });

  t.test('publish says whether any node was subscribed (no owner: 0)', async (t) => {
    const { a, b } = await setup(t);
    const channel = sessionControl(newSessionId());
    t.equal(await a.publish(channel, bytes('nobody')), 0, 'no subscriber: 0');
    const c = collector();
    const off = await b.subscribe(channel, c.handler);
    t.ok((await a.publish(channel, bytes('someone'))) >= 1, 'a subscriber: at least 1');
    await c.upTo(1);
    off();
  });

  t.test('publishes made together each get their own receiver count, in order', async (t) => {
    // One run of the event loop: an edge's keystrokes for many sessions, some of which
    // have no owner right now. More than one script call's worth, to cross a batch edge.
    const { a, b } = await setup(t);
    const owned = [sessionControl(newSessionId()), sessionControl(newSessionId())];
    const orphan = sessionControl(newSessionId());
    const c = [collector(), collector()];
    await b.subscribe(owned[0]!, c[0]!.handler);
    await b.subscribe(owned[1]!, c[1]!.handler);
    const plan = Array.from({ length: 1300 }, (_, i) => (i % 3 === 2 ? -1 : i % 3));
    const counts = await Promise.all(plan.map((who, i) => a.publish(who < 0 ? orphan : owned[who]!, bytes(`m${i}`))));
    t.same(counts.map((n) => n > 0), plan.map((who) => who >= 0), 'subscribed channels count a receiver, the orphan 0');
    const expected = (who: number): string[] => plan.flatMap((w, i) => (w === who ? [`m${i}`] : []));
    await c[0]!.upTo(expected(0).length);
    await c[1]!.upTo(expected(1).length);
    t.same(c[0]!.got.map(text), expected(0), 'first channel: every message once, in order');
    t.same(c[1]!.got.map(text), expected(1), 'second channel: every message once, in order');
  });

  t.test('every handler of a channel gets the same instance', async (t) => {
    const { a, b } = await setup(t);
    const channel = sessionEvents(newSessionId());
    const [c1, c2] = [collector(), collector()];
    await b.subscribe(channel, c1.handler);
    await b.subscribe(channel, c2.handler);
    await a.publish(channel, bytes('shared'));
    await c1.upTo(1);
    await c2.upTo(1);
    t.equal(c1.got[0], c2.got[0], 'one Uint8Array for both handlers');
    t.equal(text(c1.got[0]!), 'shared');
  });

  t.test('nothing is stored: a subscriber sees only later messages', async (t) => {
    const { a, b } = await setup(t);
    const channel = sessionEvents(newSessionId());
    await a.publish(channel, bytes('before'));
    const c = collector();
    await b.subscribe(channel, c.handler);
    await a.publish(channel, bytes('after'));
    await c.upTo(1);
    t.equal(text(c.got[0]!), 'after');
  });

  t.test('subscriptions are reference-counted per channel', async (t) => {
    const { a, b } = await setup(t);
    const sid = newSessionId();
    // Both channels of one session share a slot, so on Redis (Cluster too) they ride one
    // connection in order: when the sentinel arrives, anything earlier has too.
    const channel = sessionEvents(sid);
    const sentinel = collector();
    await b.subscribe(sessionControl(sid), sentinel.handler);
    const [c1, c2] = [collector(), collector()];
    const off1 = await b.subscribe(channel, c1.handler);
    const off2 = await b.subscribe(channel, c2.handler);

    off1();
    off1(); // idempotent: must not drop c2's reference
    await a.publish(channel, bytes('one'));
    await c2.upTo(1);
    t.same(c1.got.map(text), [], 'an unsubscribed handler gets nothing');
    t.same(c2.got.map(text), ['one'], 'the remaining handler still gets messages');

    off2();
    await a.publish(channel, bytes('two'));
    await a.publish(sessionControl(sid), bytes('sentinel'));
    await sentinel.upTo(1);
    t.same(c2.got.map(text), ['one'], 'no delivery after the last unsubscribe');

    const c3 = collector();
    const off3 = await b.subscribe(channel, c3.handler);
    await a.publish(channel, bytes('three'));
    await c3.upTo(1);
    t.same(c3.got.map(text), ['three'], 'subscribing again works, and sees only new messages');
    t.same([c1.got.length, c2.got.length], [0, 1]);
    off3();
  });

  t.test('the same function subscribed twice counts twice', async (t) => {
    const { a, b } = await setup(t);
    const channel = sessionEvents(newSessionId());
    const c = collector();
    const off1 = await b.subscribe(channel, c.handler);
    const off2 = await b.subscribe(channel, c.handler);
    await a.publish(channel, bytes('x'));
    await c.upTo(2);
    off1();
    await a.publish(channel, bytes('y'));
    await c.upTo(3);
    t.same(c.got.map(text), ['x', 'x', 'y']);
    off2();
  });

  t.test('channels are independent', async (t) => {
    const { a, b } = await setup(t);
    const sid = newSessionId();
    const [events, control] = [collector(), collector()];
    await b.subscribe(sessionEvents(sid), events.handler);
    await b.subscribe(sessionControl(sid), control.handler);
    await a.publish(sessionControl(sid), bytes('ctl'));
    await a.publish(sessionEvents(sid), bytes('ev'));
    await events.upTo(1);
    await control.upTo(1);
    t.same(events.got.map(text), ['ev']);
    t.same(control.got.map(text), ['ctl']);
  });

  t.test('a closed bus is not healthy', async (t) => {
    const { a } = await setup(t);
    t.ok(a.isHealthy());
    await a.close();
    t.notOk(a.isHealthy());
  });
}
