/** The Leases contract (src/lease/leases.ts), run against every implementation. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import type { Leases } from '../../src/lease/leases.js';
import { newSessionId } from '../../src/util/ids.js';
import { until } from '../helpers/redis.js';

const LONG_MS = 60_000;
const SHORT_MS = 30;

export async function leasesContract(t: Test, make: () => Promise<Leases>): Promise<void> {
  const setup = async (t: Test): Promise<Leases> => {
    const leases = await make();
    t.teardown(() => leases.close());
    return leases;
  };
  const expiry = (leases: Leases, sid: string) => until(async () => (await leases.current(sid)) === null, 'lease expiry');

  t.test('one holder at a time', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    t.equal(await leases.current(sid), null, 'free at first');
    const epoch = await leases.acquire(sid, 'host-a:7070', LONG_MS);
    t.type(epoch, 'number');
    t.ok(epoch! >= 1);
    t.same(await leases.current(sid), { node: 'host-a:7070', epoch }, 'node ids may contain colons');
    t.equal(await leases.acquire(sid, 'host-b:7070', LONG_MS), null, 'held: another node cannot take it');
    t.equal(await leases.acquire(sid, 'host-a:7070', LONG_MS), null, 'held: not even the holder again');
    t.ok(await leases.acquire(newSessionId(), 'host-b:7070', LONG_MS), 'sessions are independent');
  });

  t.test('renew and release are compare-and-set', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.acquire(sid, 'a', LONG_MS))!;
    t.equal(await leases.renew(sid, 'b', epoch, LONG_MS), false, 'wrong node');
    t.equal(await leases.renew(sid, 'a', epoch + 1, LONG_MS), false, 'wrong epoch');
    t.equal(await leases.renew(sid, 'a', epoch, LONG_MS), true, 'holder renews');
    t.equal(await leases.release(sid, 'b', epoch), false, 'wrong node');
    t.equal(await leases.release(sid, 'a', epoch - 1), false, 'wrong epoch');
    t.same(await leases.current(sid), { node: 'a', epoch }, 'still held');
    t.equal(await leases.release(sid, 'a', epoch), true, 'holder releases');
    t.equal(await leases.current(sid), null);
    t.equal(await leases.release(sid, 'a', epoch), false, 'released already');
    t.equal(await leases.renew(sid, 'a', epoch, LONG_MS), false, 'cannot renew a released lease');
  });

  t.test('epochs strictly increase across releases and expiries', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epochs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const e = (await leases.acquire(sid, `n${i}`, LONG_MS))!;
      epochs.push(e);
      t.ok(await leases.release(sid, `n${i}`, e));
    }
    const expiring = (await leases.acquire(sid, 'x', SHORT_MS))!;
    epochs.push(expiring);
    await expiry(leases, sid);
    epochs.push((await leases.acquire(sid, 'y', LONG_MS))!);
    t.ok(epochs.every((e, i) => i === 0 || e > epochs[i - 1]!), `strictly increasing: ${epochs.join(' < ')}`);
  });

  t.test('after expiry the old holder can neither renew nor release', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.acquire(sid, 'a', SHORT_MS))!;
    await expiry(leases, sid);
    t.equal(await leases.renew(sid, 'a', epoch, LONG_MS), false, 'renew fails after expiry');
    t.equal(await leases.release(sid, 'a', epoch), false, 'release fails after expiry');
    const next = (await leases.acquire(sid, 'b', LONG_MS))!;
    t.ok(next > epoch);
    t.equal(await leases.renew(sid, 'a', epoch, LONG_MS), false, 'and cannot touch the new holder');
    t.same(await leases.current(sid), { node: 'b', epoch: next });
  });

  t.test('renew extends the lease', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.acquire(sid, 'a', 200))!;
    t.ok(await leases.renew(sid, 'a', epoch, LONG_MS));
    // No event to await here: outlive the first ttl. Passing does not depend on timing.
    await sleep(300);
    t.same(await leases.current(sid), { node: 'a', epoch }, 'still held past the first ttl');
  });
}
