/**
 * The one retry rule of the clients (src/client/retry.ts): a pure function of the cause
 * and the attempt number, tested with the randomness pinned.
 */
import t from 'tap';
import { CLOSE, TEMPORARY, WIRE_ERROR_CODES } from '../src/errors/errors.js';
import { classify, DEFAULT_RETRY_POLICY, retryDecision, retryDelayMs, type RetryCause } from '../src/client/retry.js';

const low = (): number => 0;
const high = (): number => 0.999999;

t.test('error frames: temporary ones retry, permanent ones give up with the server message', async (t) => {
  const busy: RetryCause = { kind: 'error', code: 'unavailable', msg: 'too many opens waiting; retry in 800 ms', temporary: true, retryMs: 800 };
  const d = retryDecision(busy, 0, low);
  t.ok(d.retry);
  if (d.retry) t.equal(d.delayMs, 800, 'no sooner than retryMs');
  const gone = retryDecision({ kind: 'error', code: 'not_found', msg: 'no session AAA', temporary: false }, 0, low);
  t.same(gone, { retry: false, code: 'not_found', message: 'not_found: no session AAA' }, "the server's message, at once");
  // The frame's own flag wins over the catalog.
  t.equal(classify({ kind: 'error', code: 'internal', msg: 'x', temporary: false }).temporary, false);
  t.equal(classify({ kind: 'error', code: 'conflict', msg: 'x', temporary: true }).temporary, true);
});

t.test('an error frame without `temporary` falls back to the catalog', async (t) => {
  for (const code of WIRE_ERROR_CODES) t.equal(classify({ kind: 'error', code, msg: '' }).temporary, TEMPORARY[code], code);
  t.equal(classify({ kind: 'error', code: 'teleported', msg: '' }).temporary, false, 'an unknown code is not retried');
});

t.test('bye and close codes', async (t) => {
  const bye = retryDecision({ kind: 'bye', reason: 'draining', retryMs: 400 }, 0, high);
  t.ok(bye.retry && bye.delayMs >= 400 && bye.delayMs <= 600, `bye: between retryMs and 1.5 × retryMs (${bye.retry && bye.delayMs})`);
  for (const { code, temporary } of Object.values(CLOSE)) {
    t.equal(classify({ kind: 'close', code, reason: '' }).temporary, temporary, `close ${code} as the catalog says`);
  }
  for (const code of [1005, 1006, 1012, 1014]) t.ok(classify({ kind: 'close', code, reason: '' }).temporary, `close ${code}: the transport broke`);
  for (const code of [1002, 1003, 4000]) t.notOk(classify({ kind: 'close', code, reason: '' }).temporary, `close ${code}`);
  const closed = retryDecision({ kind: 'close', code: 1008, reason: 'too many bad frames' }, 0);
  t.same(closed, { retry: false, code: 'unavailable', message: 'connection closed (1008 too many bad frames)' });
});

t.test('refused upgrades and unreachable servers', async (t) => {
  t.same(retryDecision({ kind: 'refused', status: 401, message: 'wrong token' }, 0), { retry: false, code: 'unauthorized', message: 'HTTP 401: wrong token' });
  t.notOk(classify({ kind: 'refused', status: 403, message: '' }).temporary);
  for (const status of [429, 502, 503, 504]) t.ok(classify({ kind: 'refused', status, message: '' }).temporary, `HTTP ${status}`);
  t.ok(retryDecision({ kind: 'unreachable', message: 'connection refused' }, 3).retry);
});

t.test('backoff: equal jitter, doubling, capped; never under the hint', async (t) => {
  const { baseMs, maxMs, maxHintMs } = DEFAULT_RETRY_POLICY;
  t.equal(retryDelayMs(0, undefined, low), baseMs / 2);
  t.equal(retryDelayMs(0, undefined, high), baseMs);
  t.equal(retryDelayMs(3, undefined, low), baseMs * 4);
  t.equal(retryDelayMs(3, undefined, high), baseMs * 8);
  t.equal(retryDelayMs(50, undefined, low), maxMs / 2, 'capped');
  t.equal(retryDelayMs(50, undefined, high), maxMs);
  t.equal(retryDelayMs(5000, undefined, high), maxMs, 'no overflow for a long outage');
  // A hint above the backoff: between hint and 1.5 × hint.
  t.equal(retryDelayMs(0, 2000, low), 2000);
  t.equal(retryDelayMs(0, 2000, high), 3000);
  // A hint below a grown backoff: the backoff.
  t.equal(retryDelayMs(6, 100, low), Math.min(maxMs, baseMs * 64) / 2);
  t.equal(retryDelayMs(0, 10 * maxHintMs, low), maxHintMs, 'an absurd hint is clamped');
  for (let i = 0; i < 200; i++) {
    const attempt = i % 12;
    const hint = (i * 37) % 3000;
    const d = retryDelayMs(attempt, hint, Math.random);
    if (d < hint || d > 1.5 * Math.max(maxMs, hint)) t.fail(`attempt ${attempt} hint ${hint}: ${d}`);
  }
  t.pass('random delays stay within [hint, 1.5 × max(cap, hint)]');
});
