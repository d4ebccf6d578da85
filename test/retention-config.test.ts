/**
 * SWITCHBOARD_RETENTION: parsed as a duration, default 7 days, 0 keeps forever.
 */
import t from 'tap';
import { loadConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors/errors.js';

const load = (value?: string): number => loadConfig(value === undefined ? [] : ['--retention', value], {}).retentionMs;

t.test('durations', async (t) => {
  t.equal(load(), 7 * 86_400_000, 'default 7 days');
  t.equal(load('0'), 0, '0 keeps forever');
  t.equal(load('30s'), 30_000);
  t.equal(load('15m'), 900_000);
  t.equal(load('12h'), 43_200_000);
  t.equal(load('7d'), 604_800_000);
  t.equal(load('90'), 90_000, 'a bare number is seconds');
  t.equal(loadConfig([], { SWITCHBOARD_RETENTION: '2d' }).retentionMs, 172_800_000, 'from the environment');
  for (const bad of ['7w', '-1d', '1.5d', 'd', 'forever']) t.throws(() => load(bad), ConfigError, `${bad} refused`);
});
