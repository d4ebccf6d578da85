/** The Leases contract (src/lease/leases.ts), run against every implementation. */
import type { Test } from 'tap';
import type { Leases } from '../../src/lease/leases.js';
import { newSessionId } from '../../src/util/ids.js';

export async function leasesContract(t: Test, make: () => Promise<Leases>): Promise<void> {
  const setup = async (t: Test): Promise<Leases> => {
    const leases = await make();
    t.teardown(() => leases.close());
    return leases;
  };

  t.test('one owner at a time', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    t.equal(await leases.current(sid), null, 'no owner at first');
    const epoch = await leases.claim(sid, 'host-a:7070');
    t.type(epoch, 'number');
    t.ok(epoch! >= 1);
    t.same(await leases.current(sid), { node: 'host-a:7070', epoch }, 'node ids may contain colons');
    t.equal(await leases.claim(sid, 'host-b:7070'), null, 'owned: another node cannot claim it');
    t.equal(await leases.claim(sid, 'host-a:7070'), null, 'owned: not even the owner again');
    t.ok(await leases.claim(newSessionId(), 'host-b:7070'), 'sessions are independent');
  });

  t.test('takeover is compare-and-set on the record the caller saw', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const first = (await leases.claim(sid, 'a'))!;
    t.equal(await leases.takeover(sid, 'b', null), null, 'expected no owner, but a owns it');
    t.equal(await leases.takeover(sid, 'b', { node: 'a', epoch: first + 1 }), null, 'wrong epoch');
    t.equal(await leases.takeover(sid, 'b', { node: 'c', epoch: first }), null, 'wrong node');
    const second = (await leases.takeover(sid, 'b', { node: 'a', epoch: first }))!;
    t.ok(second > first, 'a new, higher epoch');
    t.same(await leases.current(sid), { node: 'b', epoch: second });
    t.equal(await leases.takeover(sid, 'c', { node: 'a', epoch: first }), null, 'a second taker with the old view loses');
    t.same(await leases.current(sid), { node: 'b', epoch: second }, 'still b');
  });

  t.test('two nodes racing to take the same session over: exactly one wins', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const first = (await leases.claim(sid, 'dead'))!;
    const from = { node: 'dead', epoch: first };
    const results = await Promise.all(['b', 'c', 'd', 'e'].map((n) => leases.takeover(sid, n, from)));
    t.equal(results.filter((r) => r !== null).length, 1, `one winner: ${results.join(',')}`);
  });

  t.test('release is compare-and-delete', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epoch = (await leases.claim(sid, 'a'))!;
    t.equal(await leases.release(sid, 'b', epoch), false, 'wrong node');
    t.equal(await leases.release(sid, 'a', epoch - 1), false, 'wrong epoch');
    t.same(await leases.current(sid), { node: 'a', epoch }, 'still owned');
    t.equal(await leases.release(sid, 'a', epoch), true, 'owner releases');
    t.equal(await leases.current(sid), null);
    t.equal(await leases.release(sid, 'a', epoch), false, 'released already');
    t.ok(await leases.takeover(sid, 'b', null), 'a released session can be taken with from = null');
  });

  t.test('epochs strictly increase across claims, takeovers and releases, and pass minEpoch', async (t) => {
    const leases = await setup(t);
    const sid = newSessionId();
    const epochs: number[] = [];
    let holder = null as { node: string; epoch: number } | null;
    for (let i = 0; i < 3; i++) {
      const e = (await leases.takeover(sid, `n${i}`, holder))!;
      epochs.push(e);
      holder = { node: `n${i}`, epoch: e };
    }
    t.ok(await leases.release(sid, holder!.node, holder!.epoch));
    const e = (await leases.claim(sid, 'x'))!;
    epochs.push(e);
    // PostgreSQL saw a higher epoch than Redis remembers (Redis lost its data).
    const jumped = (await leases.takeover(sid, 'y', { node: 'x', epoch: e }, e + 10))!;
    epochs.push(jumped);
    t.ok(jumped > e + 10, 'above minEpoch');
    t.ok(epochs.every((v, i) => i === 0 || v > epochs[i - 1]!), `strictly increasing: ${epochs.join(' < ')}`);
  });

  t.test('takenFrom lists (once) what other nodes took over from a node', async (t) => {
    const leases = await setup(t);
    const node = `lapsed-${newSessionId()}`;
    const [a, b, c] = [newSessionId(), newSessionId(), newSessionId()];
    const ea = (await leases.claim(a, node))!;
    const eb = (await leases.claim(b, node))!;
    await leases.claim(c, node);
    t.same(await leases.takenFrom(node), [], 'nothing taken yet');
    await leases.takeover(a, 'other', { node, epoch: ea });
    await leases.takeover(b, node, { node, epoch: eb }); // its own reclaim: not "taken"
    t.same(await leases.takenFrom(node), [a]);
    t.same(await leases.takenFrom(node), [], 'read once');
  });

  t.test('currentMany reads several records in order', async (t) => {
    const leases = await setup(t);
    const sids = [newSessionId(), newSessionId(), newSessionId()];
    const e0 = (await leases.claim(sids[0]!, 'a'))!;
    const e2 = (await leases.claim(sids[2]!, 'b:1'))!;
    t.same(await leases.currentMany(sids), [{ node: 'a', epoch: e0 }, null, { node: 'b:1', epoch: e2 }]);
    t.same(await leases.currentMany([]), []);
  });
}
