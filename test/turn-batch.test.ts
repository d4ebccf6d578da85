/**
 * TurnBatch (src/util/turn-batch.ts): what one run of the event loop adds goes out
 * together, in order, in sends of at most maxBatch items; the next run starts a new batch.
 */
import t from 'tap';
import { TurnBatch } from '../src/util/turn-batch.js';

const nextIteration = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('one run: one schedule, items in order, split at maxBatch', async (t) => {
  const sends: number[][] = [];
  let schedules = 0;
  const batch = new TurnBatch<number>((flush) => {
    schedules++;
    queueMicrotask(flush);
  }, 4, (items) => sends.push(items));
  for (let i = 0; i < 10; i++) batch.add(i);
  t.same(sends, [], 'nothing is sent during the run that adds');
  await Promise.resolve();
  t.equal(schedules, 1, 'one flush scheduled for the whole run');
  t.same(sends, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], 'every item once, in order, at most 4 per send');
});

t.test('the next run makes a batch of its own', async (t) => {
  const sends: string[][] = [];
  const batch = new TurnBatch<string>(setImmediate, 100, (items) => sends.push(items));
  batch.add('a');
  batch.add('b');
  await nextIteration();
  batch.add('c');
  await nextIteration();
  t.same(sends, [['a', 'b'], ['c']]);
});

t.test('an item added while a batch is being sent goes in the next batch', async (t) => {
  const sends: number[][] = [];
  const batch: TurnBatch<number> = new TurnBatch<number>(setImmediate, 100, (items) => {
    sends.push(items);
    if (items[0] === 1) batch.add(99);
  });
  batch.add(1);
  batch.add(2);
  await nextIteration();
  await nextIteration();
  t.same(sends, [[1, 2], [99]], 'the late item was neither lost nor sent twice');
});
