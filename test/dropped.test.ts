/** dropReporter: dropped writes are logged, at most once per interval per kind, with a count. */
import t from 'tap';
import { dropReporter } from '../src/util/dropped.js';
import { createLogger } from '../src/util/log.js';

t.test('one line per kind per interval, counting what was dropped meanwhile', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  let clock = 0;
  const report = dropReporter(createLogger('warn', 'test', (l) => lines.push(JSON.parse(l))), 1_000, () => clock);
  report('ack publish')(new Error('redis down'));
  report('ack publish')(new Error('redis down'));
  report('event row', { sid: 's1' })('pg down');
  t.equal(lines.length, 2, 'the first of each kind is logged at once');
  t.match(lines[0], { msg: 'ack publish failed; dropped, not retried', dropped: 1, err: 'redis down' });
  t.match(lines[1], { msg: 'event row failed; dropped, not retried', sid: 's1', err: 'pg down' });
  clock = 1_000;
  report('ack publish')(new Error('still down'));
  t.equal(lines.length, 3);
  t.match(lines[2], { dropped: 2, err: 'still down' }, 'counts the one held back');
});
