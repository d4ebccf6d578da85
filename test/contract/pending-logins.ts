/** The PendingLogins contract (src/auth/pending-logins.ts), run against every implementation. */
import type { Test } from 'tap';
import type { PendingLogin, PendingLogins } from '../../src/auth/pending-logins.js';
import { newSessionId } from '../../src/util/ids.js';
import { until } from '../helpers/redis.js';

const login = (returnTo: string): PendingLogin => ({
  nonce: 'n-' + returnTo, verifier: 'v-' + returnTo, returnTo, redirectUri: 'https://gw.example/auth/callback', binding: 'b', createdAt: 1,
});

/** `a` and `b` may be two nodes' views of one store (or the same object for memory). */
export async function pendingLoginsContract(t: Test, make: () => Promise<{ a: PendingLogins; b: PendingLogins; close(): Promise<void> }>): Promise<void> {
  const setup = async (t: Test) => {
    const s = await make();
    t.teardown(() => s.close());
    return s;
  };
  const state = () => `st-${newSessionId()}`;

  t.test('put on one, taken once on the other; then gone', async (t) => {
    const { a, b } = await setup(t);
    const s = state();
    await a.put(s, login('/x'), 60_000);
    t.strictSame(await b.take(s), login('/x'), 'every field round-trips');
    t.equal(await b.take(s), null, 'taken: gone');
    t.equal(await a.take(s), null, 'for every node');
    t.equal(await a.take(state()), null, 'unknown: null');
  });

  t.test('racing takes: exactly one wins', async (t) => {
    const { a, b } = await setup(t);
    const s = state();
    await a.put(s, login('/race'), 60_000);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).take(s)));
    t.equal(results.filter((r) => r !== null).length, 1);
  });

  t.test('states are independent', async (t) => {
    const { a, b } = await setup(t);
    const [s1, s2] = [state(), state()];
    await a.put(s1, login('/1'), 60_000);
    await a.put(s2, login('/2'), 60_000);
    t.equal((await b.take(s2))?.returnTo, '/2');
    t.equal((await b.take(s1))?.returnTo, '/1');
  });

  t.test('expires after its ttl', async (t) => {
    const { a, b } = await setup(t);
    const s = state();
    await a.put(s, login('/late'), 50);
    // Probes put with the same ttl, each taken once (a take removes it): the first one
    // that answers null has expired, so `s`, put before them, has too.
    const probes = Array.from({ length: 400 }, state);
    for (const p of probes) await a.put(p, login('/probe'), 50);
    let i = 0;
    await until(async () => i < probes.length && (await a.take(probes[i++]!)) === null, 'a probe expired', 5_000);
    t.equal(await b.take(s), null, 'an expired login is gone');
  });
}
