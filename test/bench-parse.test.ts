/**
 * The bench's pure parts: flags, Redis command counters, ratios. (The harness itself runs
 * end to end in bench-smoke.test.ts.)
 */
import t from 'tap';
import { parseOptions } from '../bench/options.js';
import { commandRates, parseCommandStats } from '../bench/datastore-stats.js';
import { ratio, type BenchResult } from '../bench/result.js';

t.test('options: defaults, baselines, errors', async (t) => {
  const echo = parseOptions(['echo']);
  if (typeof echo === 'string') throw new Error(echo);
  t.equal(echo.sessions, 10_000);
  t.equal(echo.baseline, undefined);
  const relay = parseOptions(['echo', '--baseline', 'relay', '--sessions', '50']);
  if (typeof relay === 'string') throw new Error(relay);
  t.equal(relay.baseline, 'relay');
  t.equal(relay.sessions, 50);
  const idle = parseOptions(['idle']);
  if (typeof idle === 'string') throw new Error(idle);
  t.equal(idle.sessions, 5_000);
  t.equal(idle.single, false, 'idle runs on the cluster unless --single');
  t.equal(idle.warmupS, 60, 'idle settles long enough for V8 to collect the connect burst');
  t.equal(echo.warmupS, 5, 'other scenarios discard 5 s');
  t.match(parseOptions(['echo', '--baseline', 'nats']), /--baseline takes socketio or relay/);
  t.match(parseOptions(['idle', '--baseline', 'relay']), /echo scenario/);
  t.match(parseOptions(['nope']), /a scenario is required/);
  t.match(parseOptions(['echo', '--sessions', 'x']), /--sessions must be a number/);
  t.equal(parseOptions(['--help']), '');
});

t.test('Redis INFO commandstats: parsed, differenced, our own INFO taken out', async (t) => {
  const info = (publish: number, infoCalls: number, renew: number): string => [
    '# Commandstats',
    `cmdstat_publish:calls=${publish},usec=10,usec_per_call=1.00,rejected_calls=0,failed_calls=0`,
    `cmdstat_info:calls=${infoCalls},usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0`,
    `cmdstat_client|setname:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0`,
    renew ? `cmdstat_evalsha:calls=${renew},usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0` : '',
  ].join('\r\n');
  const before = parseCommandStats(info(100, 3, 0));
  t.equal(before.get('publish'), 100);
  t.equal(before.get('client|setname'), 2);
  const after = parseCommandStats(info(300, 4, 50));
  const r = commandRates(before, after, 10, 1);
  t.equal(r.commandsPerSecond, 25, '(200 publish + 50 evalsha) ÷ 10 s; our INFO not counted');
  t.same(r.top.map((c) => c.command), ['publish', 'evalsha']);
  t.equal(r.top[0]!.perSecond, 20);
});

t.test('ratio is switchboard ÷ baseline', async (t) => {
  const r = { p50: 2, p90: 4, p99: 10, p999: 20, max: 30 } as BenchResult;
  const b = { p50: 1, p90: 2, p99: 4, p999: 10, max: 0 } as BenchResult;
  const q = ratio(r, b, 'test');
  t.same([q.p50, q.p90, q.p99, q.p999], [2, 2, 2.5, 2]);
  t.ok(Number.isFinite(q.max), 'a zero baseline figure does not divide by zero');
});
