/** The Limiter contract (src/limit/limiter.ts), run against every implementation. */
import type { Test } from 'tap';
import type { Limiter } from '../../src/limit/limiter.js';
import { newSessionId } from '../../src/util/ids.js';
import { until } from '../helpers/redis.js';

const HOUR_MS = 3_600_000;

export async function limiterContract(t: Test, make: () => Promise<Limiter>): Promise<void> {
  const setup = async (t: Test): Promise<Limiter> => {
    const limiter = await make();
    t.teardown(() => limiter.close());
    return limiter;
  };
  const key = () => `test:${newSessionId()}`;

  t.test('allows exactly limit, then denies with retryMs', async (t) => {
    const limiter = await setup(t);
    const k = key();
    // An hour-long window refills one token per 12 minutes: none during the test.
    const rule = { limit: 5, windowMs: HOUR_MS };
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await limiter.take(k, rule);
      t.ok(d.ok, `take ${i + 1} allowed`);
      t.equal(d.retryMs, 0);
      remaining.push(d.remaining);
    }
    t.same(remaining, [4, 3, 2, 1, 0]);
    const denied = await limiter.take(k, rule);
    t.equal(denied.ok, false, 'take 6 denied');
    t.equal(denied.remaining, 0);
    t.ok(denied.retryMs > 0 && denied.retryMs <= HOUR_MS / 5, `retryMs ${denied.retryMs} is until one token refills`);
    const other = await limiter.take(key(), rule);
    t.same(other, { ok: true, remaining: 4, retryMs: 0 }, 'keys are independent');
  });

  t.test('cost takes several units; a denied take consumes nothing', async (t) => {
    const limiter = await setup(t);
    const k = key();
    const rule = { limit: 10, windowMs: HOUR_MS };
    t.same(await limiter.take(k, rule, 4), { ok: true, remaining: 6, retryMs: 0 });
    const denied = await limiter.take(k, rule, 7);
    t.equal(denied.ok, false);
    t.ok(denied.retryMs > 0 && denied.retryMs <= HOUR_MS / 10, 'one unit short');
    t.same(await limiter.take(k, rule, 6), { ok: true, remaining: 0, retryMs: 0 });
  });

  t.test('refills over time', async (t) => {
    const limiter = await setup(t);
    const k = key();
    const rule = { limit: 2, windowMs: 200 };
    let denied = await limiter.take(k, rule);
    for (let i = 0; denied.ok && i < 10_000; i++) denied = await limiter.take(k, rule);
    t.equal(denied.ok, false, 'drained');
    t.ok(denied.retryMs > 0 && denied.retryMs <= 100, `retryMs ${denied.retryMs}`);
    await until(async () => (await limiter.take(k, rule)).ok, 'refill');
    t.pass('allowed again after refill');
  });
}
