/**
 * The Store contract (src/store/store.ts), run against every implementation. Each test
 * uses fresh sids, owners and nodes, so implementations whose data outlives one store
 * (one PostgreSQL database per suite) need no cleanup between tests.
 */
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { SwitchboardError } from '../../src/errors/errors.js';
import type { LogChunk } from '../../src/log/log.js';
import type { SessionRecord, Store } from '../../src/store/store.js';
import { newSessionId, type Offset, type SessionId } from '../../src/util/ids.js';

const ALL = 1 << 30;
/** A fixed millisecond instant: stores must keep milliseconds exactly. */
const T0 = 1_763_000_000_123;

const unique = (prefix: string): string => `${prefix}-${randomBytes(6).toString('hex')}`;

export function sessionRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sid: newSessionId(),
    kind: 'pty',
    owner: unique('owner'),
    node: unique('node'),
    epoch: 1,
    status: 'starting',
    cols: 80,
    rows: 24,
    policy: 'latest',
    onLoss: 'lost',
    cmd: null,
    args: [],
    cwd: null,
    env: {},
    name: null,
    createdAt: T0,
    lastActivity: T0,
    clients: 0,
    exitCode: null,
    exitSignal: null,
    exitReason: null,
    ...overrides,
  };
}

/** Checks that chunks are contiguous, start at `from`, and returns their bytes. */
export function contiguous(t: Test, chunks: LogChunk[], from: Offset, what: string): Buffer {
  let at = from;
  for (const c of chunks) {
    if (c.off !== at) {
      t.fail(`${what}: chunk at ${c.off}, expected ${at}`);
      break;
    }
    at += c.data.length;
  }
  return Buffer.concat(chunks.map((c) => c.data));
}

async function rejectsConflict(t: Test, promise: Promise<unknown>, message: string): Promise<void> {
  try {
    await promise;
    t.fail(`${message}: resolved`);
  } catch (err) {
    t.ok(err instanceof SwitchboardError && err.code === 'conflict', message, { error: err });
  }
}

/** Writes `chunks` back to back from `from`, in order; returns all the bytes written. */
async function archiveAll(store: Store, sid: SessionId, epoch: number, from: Offset, chunks: Uint8Array[]): Promise<Buffer> {
  let off = from;
  for (const c of chunks) {
    await store.archive(sid, epoch, off, c);
    off += c.length;
  }
  return Buffer.concat(chunks);
}

export async function storeContract(t: Test, makeStore: () => Promise<Store>): Promise<void> {
  const setup = async (t: Test): Promise<Store> => {
    const store = await makeStore();
    t.teardown(() => store.close());
    return store;
  };

  t.test('create and get round-trip every field', async (t) => {
    const store = await setup(t);
    const full = sessionRecord({
      kind: 'agent',
      epoch: 7,
      status: 'exited',
      cols: 132,
      rows: 43,
      policy: 'smallest',
      onLoss: 'restart',
      cmd: '/bin/bash',
      args: ['-l', '-c', 'echo "héllo wörld" | cat', ''],
      cwd: '/home/ünïcode dir',
      env: { TERM: 'xterm-256color', EMPTY: '', 'WITH=EQ': 'a=b', EMOJI: '✓' },
      name: 'build #1',
      createdAt: T0,
      lastActivity: T0 + 98_765,
      clients: 3,
      exitCode: 137,
      exitSignal: 'SIGKILL',
      exitReason: 'killed by the user',
    });
    await store.createSession(full);
    t.same(await store.getSession(full.sid), full, 'every field as written');
    t.strictSame(await store.getSession(full.sid), full, 'with the same types');

    const sparse = sessionRecord({ kind: 'echo', policy: 'fixed', cmd: null, cwd: null, name: null });
    await store.createSession(sparse);
    t.strictSame(await store.getSession(sparse.sid), sparse, 'nulls and empty collections survive');

    t.equal(await store.getSession(newSessionId()), null, 'an unknown sid is null');
  });

  t.test('creating an existing sid is a conflict and changes nothing', async (t) => {
    const store = await setup(t);
    const first = sessionRecord({ cols: 100 });
    await store.createSession(first);
    await rejectsConflict(t, store.createSession(sessionRecord({ sid: first.sid, cols: 10, owner: 'intruder' })), 'duplicate sid');
    t.strictSame(await store.getSession(first.sid), first, 'the first record is intact');
  });

  t.test('updates are conditional on the epoch', async (t) => {
    const store = await setup(t);
    const rec = sessionRecord({ epoch: 5, status: 'running', cwd: '/tmp' });
    await store.createSession(rec);

    t.equal(await store.updateSession(rec.sid, 4, { status: 'lost', cols: 1, node: 'old-owner' }), false, 'an older epoch is refused');
    t.strictSame(await store.getSession(rec.sid), rec, 'and changes nothing');

    t.equal(await store.updateSession(rec.sid, 5, { cols: 100 }), true, 'the same epoch is accepted');
    t.strictSame(await store.getSession(rec.sid), { ...rec, cols: 100 }, 'only the patched field changed');

    const patch = {
      node: 'new-owner',
      status: 'exited' as const,
      rows: 50,
      lastActivity: T0 + 5000,
      clients: 2,
      exitCode: 1,
      exitSignal: 'SIGTERM',
      exitReason: 'backend exited',
      cwd: '/srv',
    };
    t.equal(await store.updateSession(rec.sid, 9, patch), true, 'a newer epoch is accepted');
    const after = { ...rec, cols: 100, ...patch, epoch: 9 };
    t.strictSame(await store.getSession(rec.sid), after, 'patch applied and the new epoch stored');

    t.equal(await store.updateSession(rec.sid, 8, { clients: 0 }), false, 'the stored epoch now fences 8');
    t.equal(await store.updateSession(rec.sid, 5, { clients: 0 }), false, 'and the original epoch');
    t.strictSame(await store.getSession(rec.sid), after, 'unchanged by fenced writes');

    t.equal(await store.updateSession(rec.sid, 9, { exitCode: null, exitSignal: null }), true);
    t.strictSame(await store.getSession(rec.sid), { ...after, exitCode: null, exitSignal: null }, 'null clears a field');

    t.equal(await store.updateSession(newSessionId(), 1, { clients: 1 }), false, 'a missing session is false');
  });

  t.test('list filters by owner, node and status, newest first', async (t) => {
    const store = await setup(t);
    const [alice, bob] = [unique('alice'), unique('bob')];
    const [n1, n2] = [unique('n1'), unique('n2')];
    const recs = [
      sessionRecord({ owner: alice, node: n1, status: 'running', createdAt: T0 + 1 }),
      sessionRecord({ owner: alice, node: n2, status: 'exited', createdAt: T0 + 4 }),
      sessionRecord({ owner: bob, node: n1, status: 'starting', createdAt: T0 + 3 }),
      sessionRecord({ owner: bob, node: n1, status: 'lost', createdAt: T0 + 2 }),
      sessionRecord({ owner: alice, node: n1, status: 'running', createdAt: T0 + 5 }),
    ];
    for (const r of recs) await store.createSession(r);
    const [a1, a2, b3, b2, a5] = recs as [SessionRecord, SessionRecord, SessionRecord, SessionRecord, SessionRecord];
    const sids = (list: SessionRecord[]): string[] => list.map((r) => r.sid);

    t.strictSame(await store.listSessions({ owner: alice }), [a5, a2, a1], 'by owner, whole records, newest first');
    t.strictSame(sids(await store.listSessions({ owner: bob })), [b3.sid, b2.sid]);
    const notBobs = await store.listSessions({ notNodes: [...new Set([b3.node, b2.node])] });
    t.notOk(notBobs.some((r) => r.node === b3.node || r.node === b2.node), 'notNodes excludes those nodes');
    t.strictSame(sids(await store.listSessions({ node: n1 })), [a5.sid, b3.sid, b2.sid, a1.sid], 'by node');
    t.strictSame(sids(await store.listSessions({ node: n2 })), [a2.sid]);
    t.strictSame(sids(await store.listSessions({ node: n1, status: ['running', 'starting'] })), [a5.sid, b3.sid, a1.sid], 'node and statuses');
    t.strictSame(sids(await store.listSessions({ owner: alice, node: n1, status: ['running'] })), [a5.sid, a1.sid], 'all three');
    t.strictSame(sids(await store.listSessions({ owner: bob, status: ['exited'] })), [], 'nothing matches');
    t.strictSame(sids(await store.listSessions({ node: n1, status: [] })), [], 'no status wanted: nothing');
    t.strictSame(sids(await store.listSessions({ owner: unique('nobody') })), [], 'unknown owner');
    t.strictSame(sids(await store.listSessions({ node: n1, limit: 2 })), [a5.sid, b3.sid], 'limit: the newest first');

    const mine = new Set(sids(recs));
    const everything = (await store.listSessions()).filter((r) => mine.has(r.sid));
    t.strictSame(sids(everything), [a5.sid, a2.sid, b3.sid, b2.sid, a1.sid], 'no filter: all, newest first');
    const byStatus = (await store.listSessions({ status: ['lost', 'exited'] })).filter((r) => mine.has(r.sid));
    t.strictSame(sids(byStatus), [a2.sid, b2.sid], 'by status alone');

    t.equal(await store.updateSession(a1.sid, 2, { status: 'lost', node: n2 }), true);
    t.strictSame(sids(await store.listSessions({ node: n2 })), [a2.sid, a1.sid], 'an update moves a session between filters');
  });

  t.test('events round-trip in order, per session', async (t) => {
    const store = await setup(t);
    const rec = sessionRecord();
    const other = sessionRecord();
    await store.createSession(rec);
    await store.createSession(other);
    const events = [
      { sid: rec.sid, epoch: 1, type: 'opened', detail: { by: 'alice', kind: 'pty' }, at: T0 },
      { sid: other.sid, epoch: 1, type: 'opened', detail: {}, at: T0 + 1 },
      { sid: rec.sid, epoch: 2, type: 'owner', detail: { from: 'n1', to: 'n2', nested: { list: [1, 'two', null, true] } }, at: T0 + 2 },
      { sid: rec.sid, epoch: 2, type: 'exit', detail: { code: 0, signal: null }, at: T0 + 3 },
    ];
    for (const e of events) await store.appendEvent(e);
    t.strictSame(await store.listEvents(rec.sid), [events[0], events[2], events[3]], 'this session, in order, every field');
    t.strictSame(await store.listEvents(other.sid), [events[1]]);
    t.strictSame(await store.listEvents(newSessionId()), [], 'none for an unknown session');
  });

  t.test('touchSessions: many sessions in one write, conditional on the epoch', async (t) => {
    const store = await setup(t);
    const a = sessionRecord({ epoch: 2 });
    const b = sessionRecord({ epoch: 5 });
    await store.createSession(a);
    await store.createSession(b);
    await store.touchSessions([
      { sid: a.sid, epoch: 2, lastActivity: a.lastActivity + 5000, clients: 3 },
      { sid: b.sid, epoch: 4, lastActivity: b.lastActivity + 5000, clients: 9 },
    ]);
    const gotA = (await store.getSession(a.sid))!;
    t.equal(gotA.clients, 3);
    t.equal(gotA.lastActivity, a.lastActivity + 5000);
    const gotB = (await store.getSession(b.sid))!;
    t.equal(gotB.clients, b.clients, 'a stale epoch changes nothing');
    t.equal(gotB.lastActivity, b.lastActivity);
    await store.touchSessions([]);
    t.pass('an empty touch is fine');
  });

  t.test('batched takeover writes: moveSessions, archivedHeads, appendEvents', async (t) => {
    const store = await setup(t);
    const a = sessionRecord({ epoch: 2, status: 'running' });
    const b = sessionRecord({ epoch: 7, status: 'running' });
    await store.createSession(a);
    await store.createSession(b);
    const moved = await store.moveSessions([{ sid: a.sid, epoch: 3 }, { sid: b.sid, epoch: 6 }, { sid: newSessionId(), epoch: 1 }], 'n9');
    t.strictSame([...moved], [a.sid], 'only the session whose epoch is not newer moved');
    const gotA = (await store.getSession(a.sid))!;
    t.same([gotA.node, gotA.epoch, gotA.status], ['n9', 3, 'running']);
    t.equal((await store.getSession(b.sid))!.node, b.node, 'a stale epoch changes nothing');
    t.strictSame([...(await store.moveSessions([], 'n9'))], []);

    await archiveAll(store, a.sid, 3, 0, [Buffer.from('hello '), Buffer.from('world')]);
    const heads = await store.archivedHeads([a.sid, b.sid]);
    t.equal(heads.get(a.sid), 11, 'the end of the archived output');
    t.equal(heads.get(b.sid), 0, 'nothing archived: 0');
    t.equal((await store.archivedHeads([])).size, 0);

    const events = [
      { sid: a.sid, epoch: 3, type: 'takeover', detail: { from: 'n1' }, at: T0 },
      { sid: b.sid, epoch: 7, type: 'takeover', detail: { from: 'n2', head: 5 }, at: T0 + 1 },
    ];
    await store.appendEvents(events);
    await store.appendEvents([]);
    t.strictSame(await store.listEvents(a.sid), [events[0]]);
    t.strictSame(await store.listEvents(b.sid), [events[1]]);
  });

  t.test('archive and readArchive: exact bytes from any offset', async (t) => {
    const store = await setup(t);
    const rec = sessionRecord({ epoch: 3 });
    await store.createSession(rec);
    const chunks = [Buffer.from('hello '), Buffer.from('world'), randomBytes(1000), Buffer.from([0, 255, 0]), randomBytes(1)];
    const all = await archiveAll(store, rec.sid, 3, 0, chunks);

    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'from 0').equals(all), 'everything from 0');
    for (const from of [1, 5, 6, 7, 11, 12, 500, 1010, 1011, 1013, all.length - 1]) {
      const got = contiguous(t, await store.readArchive(rec.sid, from, ALL), from, `from ${from}`);
      t.ok(got.equals(all.subarray(from)), `exact bytes from ${from}`);
    }
    t.strictSame(await store.readArchive(rec.sid, all.length, ALL), [], 'nothing at the head');
    t.strictSame(await store.readArchive(rec.sid, all.length + 10, ALL), [], 'nothing past the head');
    t.strictSame(await store.readArchive(newSessionId(), 0, ALL), [], 'nothing for an unknown session');
    t.equal(await store.archivedHead(rec.sid), all.length, 'archivedHead is the end of the archive');
    t.equal(await store.archivedHead(newSessionId()), 0, 'archivedHead of an unknown session is 0');

    const small = await store.readArchive(rec.sid, 3, 1);
    const smallBytes = contiguous(t, small, 3, 'small read');
    t.ok(smallBytes.length >= 1 && smallBytes.length < all.length - 3, 'maxBytes limits a read');
    t.ok(smallBytes.equals(all.subarray(3, 3 + smallBytes.length)), 'a limited read is still exact');

    const pages: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < 100; i++) {
      const page = await store.readArchive(rec.sid, from, 4);
      if (page.length === 0) break;
      const bytes = contiguous(t, page, from, `page from ${from}`);
      pages.push(bytes);
      from += bytes.length;
    }
    t.ok(Buffer.concat(pages).equals(all), 'paging with a small maxBytes reads everything once');

    // A session's archive may start past 0 (it was only archived from some offset on).
    const later = sessionRecord({ epoch: 1 });
    await store.createSession(later);
    const tail = await archiveAll(store, later.sid, 1, 4096, [Buffer.from('abc'), Buffer.from('def')]);
    const early = await store.readArchive(later.sid, 0, ALL);
    t.equal(early[0]?.off, 4096, 'a read below the first archived byte starts there');
    t.ok(contiguous(t, early, 4096, 'from below').equals(tail));
    t.ok(contiguous(t, await store.readArchive(later.sid, 4100, ALL), 4100, 'from 4100').equals(Buffer.from('ef')));
  });

  t.test('duplicate archive writes are ignored', async (t) => {
    const store = await setup(t);
    const rec = sessionRecord({ epoch: 2 });
    await store.createSession(rec);
    const all = await archiveAll(store, rec.sid, 2, 0, [Buffer.from('first'), Buffer.from('second'), Buffer.from('third')]);
    // A retried write-behind flush sends the same chunks again (here with other bytes, to
    // see which copy is kept).
    await store.archive(rec.sid, 2, 0, Buffer.from('FIRST'));
    await store.archive(rec.sid, 2, 5, Buffer.from('SECOND'));
    await store.archive(rec.sid, 2, 11, Buffer.from('THIRD'));
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'after duplicates').equals(all), 'the first copy stays');
    await store.archive(rec.sid, 2, all.length, Buffer.from('!'));
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'appended').equals(Buffer.concat([all, Buffer.from('!')])), 'and writing goes on at the head');
  });
  t.test('appendEvents: many events in one write, in order', async (t) => {
    const store = await setup(t);
    const sid = newSessionId();
    await store.appendEvents([
      { sid, epoch: 1, type: 'open', detail: { principal: 'alice', addr: '10.0.0.1' }, at: T0 },
      { sid, epoch: 1, type: 'attach', detail: { principal: 'bob' }, at: T0 + 1 },
    ]);
    await store.appendEvents([]);
    t.strictSame((await store.listEvents(sid)).map((e) => [e.type, e.detail.principal, e.at]), [['open', 'alice', T0], ['attach', 'bob', T0 + 1]]);
  });

  t.test('reserveSession: running sessions and reservations count; atomic under racing; release and expiry free', async (t) => {
    const store = await setup(t);
    const owner = unique('capped');
    const now = T0;
    await store.createSession(sessionRecord({ owner, status: 'running' }));
    await store.createSession(sessionRecord({ owner, status: 'exited' }));
    await store.createSession(sessionRecord({ owner: unique('other'), status: 'running' }));
    const racing = await Promise.all(Array.from({ length: 8 }, (_, i) => store.reserveSession(owner, `${owner}-r${i}`, 4, now + 60_000, now)));
    t.equal(racing.filter((r) => r.ok).length, 3, 'one running + eight racing for a cap of four: exactly three reserve');
    t.ok(racing.filter((r) => !r.ok).every((r) => r.count === 4), 'the refused saw the cap full');
    const reserved = racing.map((r, i) => (r.ok ? `${owner}-r${i}` : undefined)).filter((id): id is string => id !== undefined);
    await store.releaseReservation(reserved[0]!);
    await store.releaseReservation('never-reserved');
    t.match(await store.reserveSession(owner, `${owner}-after-release`, 4, now + 60_000, now), { ok: true, count: 3 }, 'a released place is free again');
    t.match(await store.reserveSession(owner, `${owner}-full`, 4, now + 60_000, now), { ok: false, count: 4 });
    t.match(await store.reserveSession(owner, `${owner}-later`, 4, now + 120_000, now + 60_000), { ok: true, count: 1 }, 'reservations lapse at their expiry');
  });

  t.test('reserveSession: an open whose record exists is counted once, before its place is released', async (t) => {
    const store = await setup(t);
    const owner = unique('opening');
    const first = sessionRecord({ owner, status: 'starting' });
    t.match(await store.reserveSession(owner, first.sid, 2, T0 + 60_000, T0), { ok: true, count: 0 });
    await store.createSession(first); // the host's record, before the edge releases the place
    t.match(await store.reserveSession(owner, unique('second'), 2, T0 + 60_000, T0), { ok: true, count: 1 },
      'the first open counts once: the record, not the record and its place');
    t.match(await store.reserveSession(owner, unique('third'), 2, T0 + 60_000, T0), { ok: false, count: 2 }, 'and the cap still holds');
    const other = unique('other-owner');
    const shared = unique('chosen-sid');
    t.match(await store.reserveSession(other, shared, 3, T0 + 60_000, T0), { ok: true, count: 0 });
    t.match(await store.reserveSession(other, shared, 3, T0 + 60_000, T0), { ok: true, count: 1 }, 'two opens naming one sid: no error, counted once');
  });

  t.test('audit events: kept in order, filtered by type, newest limit', async (t) => {
    const store = await setup(t);
    const type = unique('login');
    await store.appendAudit([
      { type, principal: 'alice', addr: '10.0.0.1', detail: { via: 'upgrade' }, at: T0 },
      { type, principal: null, addr: '10.0.0.2', detail: { reason: 'JWT expired' }, at: T0 + 1 },
      { type, principal: 'carol', addr: '10.0.0.3', detail: {}, at: T0 + 2 },
    ]);
    const all = await store.listAudit({ type });
    t.strictSame(all.map((e) => [e.principal, e.addr, e.at]), [['alice', '10.0.0.1', T0], [null, '10.0.0.2', T0 + 1], ['carol', '10.0.0.3', T0 + 2]]);
    t.equal(all[1]!.detail.reason, 'JWT expired');
    t.strictSame((await store.listAudit({ type, limit: 2 })).map((e) => e.principal), [null, 'carol'], 'the newest two, oldest first');
  });

  t.test('share links: create, get, list per session, revoke, inactive', async (t) => {
    const store = await setup(t);
    const sid = newSessionId();
    const other = newSessionId();
    const link = (id: string, s: SessionId, at: number) => ({ id, sid: s, role: 'viewer' as const, createdBy: 'alice', createdAt: at, expiresAt: at + 3_600_000, revokedAt: null });
    const a = unique('linkaaaaaaaaaaaa');
    const b = unique('linkbbbbbbbbbbbb');
    const c = unique('linkcccccccccccc');
    await store.createLink(link(a, sid, T0));
    await store.createLink({ ...link(b, sid, T0 + 1), role: 'writer' });
    await store.createLink(link(c, other, T0));
    await rejectsConflict(t, store.createLink(link(a, sid, T0 + 5)), 'an existing id is a conflict');
    t.strictSame(await store.getLink(a), link(a, sid, T0), 'round-trips exactly');
    t.equal(await store.getLink(unique('nolink')), null);
    t.strictSame((await store.listLinks(sid)).map((l) => [l.id, l.role]), [[a, 'viewer'], [b, 'writer']], 'only this session\'s, oldest first');
    t.strictSame(await store.inactiveLinks([a, b, c]), [], 'none revoked yet');
    t.equal(await store.revokeLink(other, a, T0 + 10), false, 'not through another session');
    t.equal(await store.revokeLink(sid, unique('nolink'), T0 + 10), false, 'unknown id');
    t.equal(await store.revokeLink(sid, a, T0 + 10), true);
    t.equal(await store.revokeLink(sid, a, T0 + 20), true, 'revoking twice is fine');
    t.equal((await store.getLink(a))!.revokedAt, T0 + 10, 'and keeps the first time');
    const unknown = unique('nolink');
    t.strictSame(await store.inactiveLinks([a, b, unknown, c]), [a, unknown], 'revoked and unknown ids are inactive');
    t.strictSame(await store.inactiveLinks([]), []);
  });

  t.test('list pages: after a cursor, newest first, ties by sid, no row twice or missed', async (t) => {
    const store = await setup(t);
    const owner = unique('pager');
    // Three share a creation time: the sid breaks the tie.
    const recs = [T0 + 1, T0 + 2, T0 + 2, T0 + 2, T0 + 3, T0 + 4, T0 + 5].map((at) => sessionRecord({ owner, createdAt: at }));
    for (const r of recs) await store.createSession(r);
    const whole = (await store.listSessions({ owner })).map((r) => r.sid);
    t.equal(whole.length, recs.length);
    for (const size of [1, 2, 3, 7]) {
      const seen: string[] = [];
      let after: { createdAt: number; sid: SessionId } | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await store.listSessions(after ? { owner, limit: size, after } : { owner, limit: size });
        if (page.length === 0) break;
        seen.push(...page.map((r) => r.sid));
        const last = page.at(-1)!;
        after = { createdAt: last.createdAt, sid: last.sid };
      }
      t.strictSame(seen, whole, `pages of ${size} walk the whole listing in order`);
    }
    const tied = recs.filter((r) => r.createdAt === T0 + 2).map((r) => r.sid).sort();
    const order = whole.filter((s) => tied.includes(s));
    t.strictSame(order, tied, 'equal creation times: by sid ascending');
  });

  t.test('deleteEnded: ended sessions past the cutoff, with events, links and archive; never live ones', async (t) => {
    const store = await setup(t);
    const old = T0 - 10 * 86_400_000;
    const owner = unique('retained');
    const exited = sessionRecord({ owner, status: 'exited', lastActivity: old });
    const lost = sessionRecord({ owner, status: 'lost', lastActivity: old + 1 });
    const running = sessionRecord({ owner, status: 'running', lastActivity: old });
    const starting = sessionRecord({ owner, status: 'starting', lastActivity: old });
    const recent = sessionRecord({ owner, status: 'exited', lastActivity: T0 });
    // Ended by an update, not created ended; and one ended long ago but active since.
    const endedLater = sessionRecord({ owner, status: 'running', lastActivity: old });
    const touchedAfterEnd = sessionRecord({ owner, status: 'running', lastActivity: old });
    for (const r of [exited, lost, running, starting, recent, endedLater, touchedAfterEnd]) {
      await store.createSession(r);
      await store.appendEvent({ sid: r.sid, epoch: 1, type: 'opened', detail: {}, at: old });
      await store.archive(r.sid, 1, 0, Buffer.from(`output of ${r.sid}`));
      await store.createLink({ id: unique('lnk'), sid: r.sid, role: 'viewer', createdBy: owner, createdAt: old, expiresAt: T0 + 1000, revokedAt: null });
    }
    for (const r of [endedLater, touchedAfterEnd]) t.ok(await store.updateSession(r.sid, r.epoch, { status: 'exited', exitCode: 0 }));
    await store.touchSessions([{ sid: touchedAfterEnd.sid, epoch: touchedAfterEnd.epoch, lastActivity: T0, clients: 0 }]);
    const cutoff = T0 - 86_400_000;
    t.equal(await store.deleteEnded(cutoff, 1), 1, 'at most `limit` a call');
    t.equal(await store.deleteEnded(cutoff, 100), 2, 'the others next');
    t.equal(await store.deleteEnded(cutoff, 100), 0, 'then none');
    t.equal(await store.getSession(endedLater.sid), null, 'ended by an update, its last activity past the cutoff: deleted');
    t.ok(await store.getSession(touchedAfterEnd.sid), 'ended, but active after the cutoff: kept');
    for (const r of [exited, lost]) {
      t.equal(await store.getSession(r.sid), null, `${r.status} past the cutoff: deleted`);
      t.strictSame(await store.listEvents(r.sid), [], 'with its events');
      t.strictSame(await store.readArchive(r.sid, 0, 1 << 20), [], 'and its archive');
      t.equal(await store.archivedHead(r.sid), 0);
      t.strictSame(await store.listLinks(r.sid), [], 'and its links');
    }
    for (const r of [running, starting, recent]) {
      t.ok(await store.getSession(r.sid), `${r.status} at ${r.lastActivity === old ? 'the old time' : 'a recent time'}: kept`);
      t.equal((await store.listEvents(r.sid)).length, 1, 'with its events');
      t.ok((await store.readArchive(r.sid, 0, 1 << 20)).length > 0, 'and its archive');
      t.equal((await store.listLinks(r.sid)).length, 1, 'and its link');
    }
  });
}
