/**
 * Paced slices (src/util/paced.ts): background writes of many rows spread over time;
 * a shutdown cuts the pauses short.
 */
import t from 'tap';
import { MAX_SLICE_PAUSE_MS, SlicePacer, slicePause } from '../src/util/paced.js';

t.test('the pause spreads the slices over the time given, within a cap', async (t) => {
  t.equal(slicePause(1, 10_000), 0, 'one slice: nothing to wait between');
  t.equal(slicePause(0, 10_000), 0);
  t.equal(slicePause(20, 0), 0, 'no time to spread over: back to back');
  t.equal(slicePause(20, 1_000), 50, '20 slices over 1 s');
  t.equal(slicePause(20, 3_600_000), MAX_SLICE_PAUSE_MS, 'never longer than the cap');
});

t.test('a pause of 0 still lets queued work run first', async (t) => {
  const pacer = new SlicePacer();
  let ran = false;
  setImmediate(() => {
    ran = true;
  });
  await pacer.pause(0);
  t.ok(ran, 'an I/O-phase callback queued before the pause ran during it');
});

t.test('hurry() ends every pause under way and makes later ones immediate', async (t) => {
  const pacer = new SlicePacer();
  const first = pacer.pause(3_600_000);
  const second = pacer.pause(3_600_000); // two flushes sharing the pacer
  pacer.hurry();
  await Promise.all([first, second]); // an hour otherwise: the test would time out
  await pacer.pause(3_600_000);
  t.pass('all three pauses ended without their hour');
});
