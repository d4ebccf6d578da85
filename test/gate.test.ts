import t from 'tap';
import { Gate } from '../src/edge/gate.js';
import { SwitchboardError } from '../src/errors/errors.js';

/** A task that finishes when the test says so. */
function held(): { task: () => Promise<string>; finish: (v: string) => void; started: boolean } {
  const h = { started: false, finish: (_v: string) => {}, task: async () => '' };
  h.task = () => {
    h.started = true;
    return new Promise<string>((resolve) => (h.finish = resolve));
  };
  return h;
}

const timeout = (waited: number): Error => new SwitchboardError('unavailable', `waited ${waited} ms`);

t.test('runs up to concurrency, queues up to the limit, refuses beyond', async (t) => {
  const gate = new Gate(2, 2, 0, timeout);
  const tasks = Array.from({ length: 5 }, held);
  const runs = tasks.map((h) => gate.tryRun(h.task));
  t.ok(runs[0] && runs[1] && runs[2] && runs[3], 'four admitted');
  t.equal(runs[4], undefined, 'the fifth refused');
  t.same(tasks.map((h) => h.started), [true, true, false, false, false]);
  t.equal(gate.active, 2);
  t.equal(gate.queued, 2);
  t.notOk(gate.hasRoom);
  tasks[1]!.finish('b');
  t.equal(await runs[1], 'b');
  t.same(tasks.map((h) => h.started), [true, true, true, false, false], 'the oldest waiter got the slot');
  t.ok(gate.hasRoom);
  tasks[0]!.finish('a');
  await runs[0];
  t.ok(tasks[3]!.started);
  tasks[2]!.finish('c');
  tasks[3]!.finish('d');
  t.same(await Promise.all([runs[2], runs[3]]), ['c', 'd']);
  t.equal(gate.active, 0);
  t.equal(gate.queued, 0);
});

t.test('a freed slot goes to a waiter, not to a newcomer', async (t) => {
  const gate = new Gate(1, 1, 0, timeout);
  const first = held();
  const waiter = held();
  const a = gate.tryRun(first.task)!;
  const b = gate.tryRun(waiter.task)!;
  first.finish('x');
  await a;
  t.ok(waiter.started, 'the waiter runs');
  const newcomer = held();
  const c = gate.tryRun(newcomer.task)!;
  t.notOk(newcomer.started, 'the newcomer waits its turn');
  t.equal(gate.queued, 1);
  waiter.finish('y');
  t.equal(await b, 'y');
  newcomer.finish('z');
  t.equal(await c, 'z');
});

t.test('a failing task frees its slot', async (t) => {
  const gate = new Gate(1, 0, 0, timeout);
  await t.rejects(gate.tryRun(async () => {
    throw new Error('boom');
  })!, /boom/);
  t.equal(gate.active, 0);
  t.equal(await gate.tryRun(async () => 7), 7);
});

t.test('a waiter past maxWaitMs is rejected and leaves the queue', async (t) => {
  const gate = new Gate(1, 1, 20, timeout);
  const first = held();
  const a = gate.tryRun(first.task)!;
  const waiter = held();
  const b = gate.tryRun(waiter.task)!;
  // The gate's timers are unref'd (they never hold a node open): keep this process up.
  const keepAlive = setInterval(() => {}, 1000);
  await t.rejects(b, { code: 'unavailable' });
  clearInterval(keepAlive);
  t.equal(gate.queued, 0);
  t.notOk(waiter.started, 'never ran');
  first.finish('done');
  await a;
  t.equal(gate.active, 0);
});

t.test('retry hints stay within their floor and ceiling', async (t) => {
  const gate = new Gate(1, 10, 0, timeout);
  t.equal(gate.retryMs(250), 250, 'the floor before anything ran');
  t.equal(await gate.tryRun(async () => 1), 1);
  const hint = gate.retryMs(100, 200);
  t.ok(hint >= 100 && hint <= 200);
});
