/**
 * The reaper's store scan (src/host/reconciler.ts): it reads every running session's row,
 * so it runs only when a node left the registry, when this node fenced sessions, when
 * orphans were left last time, or every FULL_SCAN_MS; never at every 200 ms pass. The
 * seams here are stand-ins that count calls: what is under test is when the reaper asks.
 */
import t from 'tap';
import { Reconciler } from '../src/host/reconciler.js';
import type { Host } from '../src/host/host.js';
import type { Leases } from '../src/lease/leases.js';
import type { NodeInfo, Registry } from '../src/registry/registry.js';
import type { SessionRecord, Store } from '../src/store/store.js';
import { createLogger } from '../src/util/log.js';

function world() {
  let nodes = ['self', 'b'];
  let fenced: string[] = [];
  let orphans: SessionRecord[] = [];
  let now = 1_000_000;
  const scans: number[] = [];
  const registry = { list: async () => nodes.map((id) => ({ id }) as NodeInfo) } as unknown as Registry;
  const store = {
    listSessions: async () => {
      scans.push(now);
      return orphans.map((r) => ({ ...r }));
    },
    getSession: async () => null,
  } as unknown as Store;
  const leases = { currentMany: async (sids: string[]) => sids.map(() => null) } as unknown as Leases;
  const host = {
    draining: false,
    adoptKept: async () => new Set<string>(),
    takeFenced: () => {
      const out = fenced;
      fenced = [];
      return out;
    },
    hosted: () => undefined,
    takeoverMany: async (list: unknown[]) => list.length,
  } as unknown as Host;
  const reaper = new Reconciler('self', 200, { host, store, leases, registry, logger: createLogger('error') }, 0, () => now);
  return {
    reaper,
    scans,
    /** One reaper pass, `ms` after the previous one. */
    passAfter: async (ms = 200) => {
      now += ms;
      await reaper.pass();
    },
    setNodes: (ids: string[]) => { nodes = ids; },
    fence: (sid: string) => { fenced.push(sid); },
    leaveOrphans: (records: SessionRecord[]) => { orphans = records; },
  };
}

t.test('passes with nobody gone do not scan the store until the full-scan interval', async (t) => {
  const w = world();
  await w.reaper.pass();
  t.equal(w.scans.length, 1, 'the first pass scans (it adopts what a previous life left)');
  for (let i = 0; i < 9; i++) await w.passAfter();
  t.equal(w.scans.length, 1, '1.8 s of passes with the same nodes alive: no scan');
  await w.passAfter();
  t.equal(w.scans.length, 2, 'at 2 s: a full scan');
});

t.test('a node leaving the registry is looked for at the next pass', async (t) => {
  const w = world();
  await w.reaper.pass();
  w.setNodes(['self']);
  await w.passAfter();
  t.equal(w.scans.length, 2, 'node b left: scanned at once');
  await w.passAfter();
  t.equal(w.scans.length, 2, 'and not again while nothing changes');
});

t.test('fenced sessions, and orphans left over, make the next pass scan', async (t) => {
  const w = world();
  await w.reaper.pass();
  w.fence('s1');
  await w.passAfter();
  t.equal(w.scans.length, 2, 'a session fenced here: scanned');
  w.leaveOrphans([{ sid: 's2', node: 'gone', kind: 'pty', status: 'running' } as SessionRecord]);
  w.setNodes(['self']);
  await w.passAfter();
  t.equal(w.scans.length, 3, 'node b left');
  await w.passAfter();
  t.equal(w.scans.length, 4, 'orphans were there last time: scanned again');
  w.leaveOrphans([]);
  await w.passAfter();
  await w.passAfter();
  t.equal(w.scans.length, 5, 'none left: back to the interval');
});
