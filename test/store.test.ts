/**
 * The Store contract against MemoryStore and PostgresStore, then what only PostgreSQL
 * has: migrations, surviving a server restart, fencing and holes in the archive, and
 * the write-behind ArchiveWriter.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { Test } from 'tap';
import pg from 'pg';
import { MemoryStore } from '../src/store/memory-store.js';
import { PostgresStore, type ArchiveRow, type ArchiveSink } from '../src/store/postgres-store.js';
import { ArchiveWriter } from '../src/store/archive-writer.js';
import { Retention } from '../src/store/retention.js';
import { createLogger } from '../src/util/log.js';
import { loadMigrations, migrate } from '../src/store/migrate.js';
import { newSessionId } from '../src/util/ids.js';
import { contiguous, sessionRecord, storeContract } from './contract/store.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { until } from './helpers/redis.js';

const ALL = 1 << 30;

// One server for the whole file, a database per suite. synchronous_commit on: the
// restart tests check that rows committed before a crash are still there.
let server: PostgresServer;
t.before(async () => {
  server = await startPostgres({ synchronousCommit: true });
});
t.teardown(() => server?.stop());

/** A pool on a fresh, migrated database; ended when `t` ends. */
async function freshPool(t: Test, migrated = true): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: await server.createDatabase(), max: 5, connectionTimeoutMillis: 5000 });
  // Errors of idle clients (server killed) are the store's business when there is one;
  // the pool must never crash the test on its own.
  pool.on('error', () => {});
  t.teardown(() => pool.end());
  if (migrated) await migrate(pool);
  return pool;
}

t.test('memory store', (t) => storeContract(t, async () => new MemoryStore()));

t.test('postgres store', async (t) => {
  const pool = await freshPool(t);
  await storeContract(t, async () => new PostgresStore(pool));
});

t.test('migrations', async (t) => {
  const versions = (await loadMigrations()).map((m) => m.version);
  t.strictSame(versions, ['001_sessions', '002_session_events', '003_session_output', '004_share_links_audit', '005_sessions_retention', '006_session_reservations', '007_session_output_lz4', '008_sessions_hot_touches'], 'found in order');

  t.test('are applied once and recorded once each', async (t) => {
    const pool = await freshPool(t, false);
    t.strictSame(await migrate(pool), versions, 'first run applies all');
    t.strictSame(await migrate(pool), [], 'second run applies none');
    const { rows } = await pool.query<{ version: string; n: string }>(
      'SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version');
    t.strictSame(rows.map((r) => [r.version, Number(r.n)]), versions.map((v) => [v, 1]));
    const tables = await pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`);
    t.strictSame(tables.rows.map((r) => r.table_name), ['audit_events', 'schema_migrations', 'session_events', 'session_output', 'session_reservations', 'sessions', 'share_links']);
  });

  t.test('new archive rows are compressed with lz4 where the server has it', async (t) => {
    const pool = await freshPool(t);
    const { rows: [setting] } = await pool.query<{ compression: string | null }>(
      `SELECT attcompression::text AS compression FROM pg_attribute WHERE attrelid = 'session_output'::regclass AND attname = 'data'`);
    // This machine's PostgreSQL 15 is built with lz4 (Debian's is): the setting must be there.
    t.equal(setting!.compression, 'l', 'session_output.data is set to lz4');
    // Compressible and above TOAST's ~2 KB threshold, like an archive segment of output.
    const segment = Buffer.from('$ ls -la\r\n'.repeat(2_000));
    await pool.query('INSERT INTO session_output (sid, off, data) VALUES ($1, 0, $2)', ['lz4-check', segment]);
    const { rows: [row] } = await pool.query<{ method: string | null; stored: number; data: Buffer }>(
      `SELECT pg_column_compression(data) AS method, pg_column_size(data) AS stored, data FROM session_output WHERE sid = 'lz4-check'`);
    t.equal(row!.method, 'lz4', 'the row was compressed with lz4');
    t.ok(row!.stored < segment.length / 4, `stored ${row!.stored} of ${segment.length} bytes`);
    t.ok(row!.data.equals(segment), 'and reads back byte for byte');
  });

  t.test('touches change no indexed column of sessions, so they can be HOT updates', async (t) => {
    const pool = await freshPool(t);
    const { rows } = await pool.query<{ def: string }>(
      `SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'sessions'::regclass`);
    t.ok(rows.length >= 4, `${rows.length} indexes`);
    // touchSessions sets exactly these two (src/store/postgres-store.ts).
    for (const { def } of rows) t.notMatch(def, /\b(last_activity|clients)\b/, def);
    const { rows: [options] } = await pool.query<{ reloptions: string[] | null }>(`SELECT reloptions FROM pg_class WHERE oid = 'sessions'::regclass`);
    t.match(options!.reloptions, ['fillfactor=80'], 'pages keep room for the new versions');
  });

  t.test('an upgrade gives sessions that ended before it their retention time', async (t) => {
    const pool = await freshPool(t, false);
    const { mkdtemp, copyFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { MIGRATIONS_DIR } = await import('../src/store/migrate.js');
    const before = await mkdtemp(join(tmpdir(), 'sb-migrations-before-'));
    t.teardown(() => rm(before, { recursive: true, force: true }));
    for (const v of versions.slice(0, versions.indexOf('008_sessions_hot_touches'))) await copyFile(join(MIGRATIONS_DIR, `${v}.sql`), join(before, `${v}.sql`));
    await migrate(pool, { dir: before });
    const store = new PostgresStore(pool);
    const ended = sessionRecord({ status: 'exited', lastActivity: Date.now() - 10 * 86_400_000 });
    const running = sessionRecord({ status: 'running', lastActivity: Date.now() - 10 * 86_400_000 });
    for (const r of [ended, running]) await store.createSession(r);
    t.strictSame(await migrate(pool), ['008_sessions_hot_touches'], 'the upgrade applies the new one only');
    t.equal(await store.deleteEnded(Date.now() - 86_400_000, 100), 1, 'the session ended before the upgrade is deleted by retention');
    t.equal(await store.getSession(ended.sid), null);
    t.ok(await store.getSession(running.sid), 'the running one is kept');
  });

  t.test('run concurrently from several pools, each applied exactly once', async (t) => {
    const url = await server.createDatabase();
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: url, max: 2 }));
    t.teardown(() => Promise.all(pools.map((p) => p.end())));
    const results = await Promise.all(pools.map((p) => migrate(p)));
    t.strictSame(results.flat().sort(), versions, 'every version applied by exactly one node');
    t.ok(results.some((r) => r.length === versions.length), 'one node applied them all (the lock serializes runs)');
    const { rows } = await pools[0]!.query<{ n: string }>('SELECT count(*) AS n FROM schema_migrations');
    t.equal(Number(rows[0]!.n), versions.length);
  });

  t.test('a failing migration is rolled back and not recorded', async (t) => {
    const pool = await freshPool(t, false);
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'sb-migrations-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '001_ok.sql'), 'CREATE TABLE ok (x int);');
    await writeFile(join(dir, '002_bad.sql'), 'CREATE TABLE half (x int); SELECT nonsense FROM nowhere;');
    await t.rejects(migrate(pool, { dir }), /002_bad/);
    const { rows } = await pool.query<{ version: string }>('SELECT version FROM schema_migrations');
    t.strictSame(rows.map((r) => r.version), ['001_ok'], 'the good one stays recorded');
    const half = await pool.query(`SELECT 1 FROM information_schema.tables WHERE table_name = 'half'`);
    t.equal(half.rowCount, 0, 'the bad one left nothing behind');
    t.strictSame(await migrate(pool), versions, 'the pool still works (lock released)');
  });
});

t.test('postgres archive: fencing, holes and overlaps', async (t) => {
  const pool = await freshPool(t);
  const store = new PostgresStore(pool);
  t.teardown(() => store.close());

  t.test('writes from an older epoch are ignored', async (t) => {
    const rec = sessionRecord({ epoch: 5 });
    await store.createSession(rec);
    await store.archive(rec.sid, 4, 0, Buffer.from('stale'));
    t.strictSame(await store.readArchive(rec.sid, 0, ALL), [], 'epoch 4 < 5: nothing stored');
    await store.archive(rec.sid, 5, 0, Buffer.from('owner'));
    t.equal(await store.updateSession(rec.sid, 6, { node: 'next' }), true, 'the session moves on to epoch 6');
    await store.archive(rec.sid, 5, 5, Buffer.from('-late'));
    await store.archive(rec.sid, 6, 5, Buffer.from('-next'));
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'fenced').equals(Buffer.from('owner-next')));
    await store.archive(newSessionId(), 1, 0, Buffer.from('orphan'));
    t.pass('a write for an unknown session is ignored');
  });

  t.test('a hole ends a read; the next read starts after it', async (t) => {
    const rec = sessionRecord();
    await store.createSession(rec);
    await store.archiveBatch([
      { sid: rec.sid, epoch: 1, off: 0, data: Buffer.from('0123456789') },
      { sid: rec.sid, epoch: 1, off: 20, data: Buffer.from('abcdefghij') },
    ]);
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'before').equals(Buffer.from('0123456789')), 'stops at the hole');
    const after = await store.readArchive(rec.sid, 10, ALL);
    t.equal(after[0]?.off, 20, 'from inside the hole: starts after it');
    t.ok(Buffer.concat(after.map((c) => c.data)).equals(Buffer.from('abcdefghij')));
    t.ok(contiguous(t, await store.readArchive(rec.sid, 25, ALL), 25, 'past').equals(Buffer.from('fghij')));
  });

  t.test('overlapping rows read as one contiguous run', async (t) => {
    const rec = sessionRecord();
    await store.createSession(rec);
    const all = randomBytes(300);
    await store.archiveBatch([
      { sid: rec.sid, epoch: 1, off: 0, data: all.subarray(0, 100) },
      { sid: rec.sid, epoch: 1, off: 50, data: all.subarray(50, 200) },
      { sid: rec.sid, epoch: 1, off: 120, data: all.subarray(120, 150) },
      { sid: rec.sid, epoch: 1, off: 200, data: all.subarray(200, 300) },
    ]);
    for (const from of [0, 60, 130, 199, 250]) {
      t.ok(contiguous(t, await store.readArchive(rec.sid, from, ALL), from, `from ${from}`).equals(all.subarray(from)), `exact from ${from}`);
    }
  });

  t.test('a write longer than a row is split, and reads from inside it are exact', async (t) => {
    const rec = sessionRecord();
    await store.createSession(rec);
    const MiB = 1024 * 1024;
    const big = randomBytes(2 * MiB + 12345);
    await store.archive(rec.sid, 1, 10, big);
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM session_output WHERE sid = $1', [rec.sid]);
    t.equal(Number(rows[0]!.n), 3, 'three rows of at most 1 MiB');
    for (const from of [10, MiB + 5, 2 * MiB + 10, 2 * MiB + 12000]) {
      t.ok(contiguous(t, await store.readArchive(rec.sid, from, ALL), from, `from ${from}`).equals(big.subarray(from - 10)), `exact from ${from}`);
    }
    // Rows: [10, MiB+10), [MiB+10, 2 MiB+10), [2 MiB+10, end).
    const page = await store.readArchive(rec.sid, MiB + 20, 100);
    t.equal(page.length, 1, 'a small read from inside the second row is one chunk');
    t.equal(page[0]!.off, MiB + 20);
    t.ok(Buffer.from(page[0]!.data).equals(big.subarray(MiB + 10, 2 * MiB)), 'up to the end of its row');
    await store.archive(rec.sid, 1, 10, big);
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 10, 'again').equals(big), 'a retried long write is ignored row by row');
  });
});

t.test('postgres restart: health follows the server, the store recovers by itself', async (t) => {
  const pool = await freshPool(t);
  const store = new PostgresStore(pool, { probeIntervalMs: 20 });
  t.teardown(() => store.close());
  const before = sessionRecord({ status: 'running' });
  await store.createSession(before);
  await t.rejects(store.createSession(before), { code: 'conflict' });
  t.equal(store.isHealthy(), true, 'a conflict is an answer: still healthy');

  await server.kill('SIGKILL');
  await t.rejects(store.getSession(before.sid), 'a query fails while the server is down');
  t.equal(store.isHealthy(), false, 'unhealthy after a failed query');
  await t.rejects(store.listSessions(), 'still failing');
  t.equal(store.isHealthy(), false);

  await server.restart();
  await until(() => store.isHealthy(), 'the probe to find the server back');
  t.strictSame(await store.getSession(before.sid), before, 'the same store reads what was written before the crash');
  t.equal(await store.updateSession(before.sid, 2, { clients: 4 }), true, 'and writes again');
  const after = sessionRecord();
  await store.createSession(after);
  t.strictSame(await store.getSession(after.sid), after);

  t.test('a query (not the probe) also restores health', async (t) => {
    const quiet = new PostgresStore(pool, { probeIntervalMs: 3_600_000 });
    t.teardown(() => quiet.close());
    await server.kill('SIGKILL');
    await t.rejects(quiet.getSession(before.sid));
    t.equal(quiet.isHealthy(), false);
    await server.restart();
    await until(() => quiet.getSession(before.sid).then(() => true, () => false), 'a query to succeed');
    t.equal(quiet.isHealthy(), true);
  });
});

/** A sink that records every batch and fails while `failing` is set. */
class FakeSink implements ArchiveSink {
  batches: ArchiveRow[][] = [];
  failing = false;
  async archiveBatch(rows: readonly ArchiveRow[]): Promise<void> {
    if (this.failing) throw new Error('database unreachable');
    this.batches.push(rows.map((r) => ({ ...r, data: Buffer.from(r.data) })));
  }
  get rows(): ArchiveRow[] {
    return this.batches.flat();
  }
}

const text = (r: ArchiveRow): [string, number, number, string] => [r.sid, r.epoch, r.off, Buffer.from(r.data).toString()];

t.test('archive writer', async (t) => {
  t.test('coalesces contiguous pushes per session and epoch into one row each', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000 });
    w.push('a', 1, 0, Buffer.from('he'));
    w.push('b', 1, 100, Buffer.from('xy'));
    w.push('a', 1, 2, Buffer.from('llo'));
    w.push('b', 1, 102, Buffer.from('z'));
    w.push('a', 1, 10, Buffer.from('gap'));
    w.push('a', 2, 13, Buffer.from('new epoch'));
    await w.flush();
    t.equal(sink.batches.length, 1, 'one flush, one batch');
    t.strictSame(sink.rows.map(text), [
      ['a', 1, 0, 'hello'],
      ['b', 1, 100, 'xyz'],
      ['a', 1, 10, 'gap'],
      ['a', 2, 13, 'new epoch'],
    ]);
    t.match(w.stats(), { pendingBytes: 0, writtenBytes: 20, droppedBytes: 0, flushes: 1, failedFlushes: 0 });
    await w.flush();
    t.equal(sink.batches.length, 1, 'nothing pending: no write');
    await w.close();
  });

  t.test('a big flush goes in slices of 500 rows, letting the event loop run between them', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000, flushBytes: 1 << 30 });
    for (let i = 0; i < 1_200; i++) w.push(`s${i}`, 1, 0, Buffer.from(`row ${i}`));
    let otherWorkRan = false;
    const ranBefore: boolean[] = [];
    const archiveBatch = sink.archiveBatch.bind(sink);
    sink.archiveBatch = (rows) => {
      ranBefore.push(otherWorkRan);
      return archiveBatch(rows);
    };
    setImmediate(() => {
      otherWorkRan = true;
    });
    await w.flush();
    t.same(sink.batches.map((b) => b.length), [500, 500, 200], 'three statements');
    t.same(ranBefore, [false, true, true], 'work queued before the flush ran between its slices');
    t.equal(new Set(sink.rows.map((r) => r.sid)).size, 1_200, 'every row written once');
    t.match(w.stats(), { pendingBytes: 0, droppedBytes: 0 });
    await w.close();
  });

  t.test('flushes on its timer and at the size threshold', async (t) => {
    const timed = new FakeSink();
    const w1 = new ArchiveWriter(timed, { flushIntervalMs: 10 });
    t.teardown(() => w1.close());
    w1.push('s', 1, 0, Buffer.from('tick'));
    await until(() => timed.rows.length === 1, 'the timer flush');
    t.strictSame(timed.rows.map(text), [['s', 1, 0, 'tick']]);

    const sized = new FakeSink();
    const w2 = new ArchiveWriter(sized, { flushIntervalMs: 3_600_000, flushBytes: 1024 });
    t.teardown(() => w2.close());
    w2.push('s', 1, 0, Buffer.alloc(600, 'a'));
    w2.push('s', 1, 600, Buffer.alloc(600, 'b'));
    await until(() => sized.rows.length > 0, 'the size-triggered flush');
    t.equal(Buffer.concat(sized.rows.map((r) => r.data)).length, 1200, 'without waiting for the (hour-long) timer');
  });

  t.test('small rows of many sessions wait for the timer until flushBytes pile up', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000, flushBytes: 4096, maxRowBytes: 1000 });
    t.teardown(() => w.close());
    for (let i = 0; i < 5; i++) w.push(`s${i}`, 1, 0, Buffer.alloc(600, String(i)));
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(sink.rows.length, 0, '3,000 bytes pending in five rows, below flushBytes: nothing written yet');
    t.equal(w.stats().pendingBytes, 3000);
    w.push('s5', 1, 0, Buffer.alloc(600, '5'));
    w.push('s6', 1, 0, Buffer.alloc(600, '6'));
    await until(() => w.stats().pendingBytes === 0, 'the flush flushBytes started');
    t.equal(sink.rows.length, 7, 'every row written');
  });

  t.test('a session whose row fills starts a flush at once; rows stay within maxRowBytes', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000, flushBytes: 1 << 20, maxRowBytes: 1000 });
    t.teardown(() => w.close());
    w.push('s', 1, 0, Buffer.alloc(400, 'a'));
    w.push('s', 1, 400, Buffer.alloc(400, 'b'));
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(sink.rows.length, 0, '800 bytes in one row that still has room: no flush');
    w.push('s', 1, 800, Buffer.alloc(400, 'c'));
    await until(() => w.stats().pendingBytes === 0, 'the flush the full row started');
    t.same(sink.rows.map((r) => [r.off, r.data.length]), [[0, 800], [800, 400]],
      'the third push did not fit the first row: a new row, and the flush without waiting for the (hour-long) timer');
  });

  t.test('a flush of many small rows pauses between its slices; one a full row started does not', async (t) => {
    const recordingPacer = (pauses: number[]) => ({
      pause: (ms: number) => {
        pauses.push(ms);
        return new Promise<void>((resolve) => setImmediate(resolve));
      },
      hurry: () => {},
    });
    const calm: number[] = [];
    const w1 = new ArchiveWriter(new FakeSink(), { flushIntervalMs: 3_600_000, pacer: recordingPacer(calm) });
    t.teardown(() => w1.close());
    for (let i = 0; i < 1_200; i++) w1.push(`s${i}`, 1, 0, Buffer.from('k'));
    await w1.flush();
    t.same(calm, [250, 250], 'three slices, spread out (the pause capped at 250 ms)');

    const busy: number[] = [];
    const w2 = new ArchiveWriter(new FakeSink(), { flushIntervalMs: 3_600_000, maxRowBytes: 1000, pacer: recordingPacer(busy) });
    t.teardown(() => w2.close());
    for (let i = 0; i < 1_200; i++) w2.push(`s${i}`, 1, 0, Buffer.from('k'));
    w2.push('flood', 1, 0, Buffer.alloc(600));
    w2.push('flood', 1, 600, Buffer.alloc(600)); // the row is full: a flush at once
    await until(() => w2.stats().pendingBytes === 0, 'the flush the full row started');
    t.same(busy, [0, 0], 'the same slices back to back: a busy session\'s bytes do not wait');

    // The same, but the first try fails: its retry is not paced either.
    const retried: number[] = [];
    const down = new FakeSink();
    down.failing = true;
    const w3 = new ArchiveWriter(down, { flushIntervalMs: 3_600_000, maxRowBytes: 1000, retryDelayMs: 1, maxRetryDelayMs: 1, pacer: recordingPacer(retried) });
    t.teardown(() => w3.close());
    for (let i = 0; i < 1_200; i++) w3.push(`s${i}`, 1, 0, Buffer.from('k'));
    w3.push('flood', 1, 0, Buffer.alloc(600));
    w3.push('flood', 1, 600, Buffer.alloc(600));
    await until(() => w3.stats().failedFlushes > 0, 'the first try to fail');
    down.failing = false;
    await until(() => w3.stats().pendingBytes === 0, 'the retry');
    t.ok(retried.length > 0 && retried.every((ms) => ms === 0), `the retry's slices back to back too (${retried.join(', ')})`);
  });

  t.test('a failed flush is retried with the same rows; later pushes go to new rows', async (t) => {
    const sink = new FakeSink();
    const errors: unknown[] = [];
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000, retryDelayMs: 10, maxRetryDelayMs: 20, onError: (e) => errors.push(e) });
    t.teardown(() => w.close());
    w.push('s', 1, 0, Buffer.from('abc'));
    sink.failing = true;
    await t.rejects(w.flush(), /unreachable/, 'flush reports the failure');
    t.equal(errors.length, 1, 'onError heard it');
    t.match(w.stats(), { pendingBytes: 3, failedFlushes: 1 });
    w.push('s', 1, 3, Buffer.from('def'));
    sink.failing = false;
    await until(() => w.stats().pendingBytes === 0, 'the retry timer to write everything');
    t.strictSame(sink.rows.map(text), [['s', 1, 0, 'abc'], ['s', 1, 3, 'def']],
      'the retried row kept its offset and bytes (a commit we did not hear about is then skipped, not extended)');
    t.equal(w.stats().droppedBytes, 0);
  });

  t.test('the backlog is bounded: the oldest bytes are dropped and counted', async (t) => {
    const sink = new FakeSink();
    sink.failing = true;
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000, retryDelayMs: 3_600_000, maxBacklogBytes: 100, flushBytes: 30, maxRowBytes: 30 });
    t.teardown(() => w.close());
    for (let i = 0; i < 10; i++) w.push('s', 1, i * 30, Buffer.alloc(30, String(i)));
    t.match(w.stats(), { pendingBytes: 100, droppedBytes: 200 });
    sink.failing = false;
    await w.flush();
    t.strictSame(sink.rows.map(text), [['s', 1, 200, '6'.repeat(10)], ...[7, 8, 9].map((i) => ['s', 1, i * 30, String(i).repeat(30)])],
      'the newest 100 bytes, at their offsets');
  });

  t.test('pushed bytes are copied: a caller may reuse its buffer at once', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000 });
    const scratch = Buffer.alloc(100);
    let off = 0;
    for (let i = 0; i < 50; i++) {
      const n = scratch.write(`line ${i};`);
      w.push('s', 1, off, scratch.subarray(0, n));
      off += n;
      scratch.fill('!');
    }
    await w.flush();
    const expected = Array.from({ length: 50 }, (_, i) => `line ${i};`).join('');
    t.strictSame(sink.rows.map(text), [['s', 1, 0, expected]], 'every push once, in one row, as pushed (the segment grew past its first buffer)');
    await w.close();
  });

  t.test('close writes what is pending; pushes after close are dropped', async (t) => {
    const sink = new FakeSink();
    const w = new ArchiveWriter(sink, { flushIntervalMs: 3_600_000 });
    w.push('s', 1, 0, Buffer.from('last words'));
    await w.close();
    t.strictSame(sink.rows.map(text), [['s', 1, 0, 'last words']]);
    w.push('s', 1, 10, Buffer.from('late'));
    t.equal(w.stats().droppedBytes, 4);
    await w.close();
  });

  t.test('into PostgreSQL: flushes, survives a server crash, retries after it is back', async (t) => {
    const pool = await freshPool(t);
    const store = new PostgresStore(pool);
    t.teardown(() => store.close());
    const w = new ArchiveWriter(store, { flushIntervalMs: 20, retryDelayMs: 20, maxRetryDelayMs: 100 });
    t.teardown(() => w.close());
    const rec = sessionRecord({ epoch: 3 });
    await store.createSession(rec);

    const parts = Array.from({ length: 50 }, () => randomBytes(100 + Math.floor(Math.random() * 100)));
    let off = 0;
    for (const p of parts.slice(0, 25)) {
      w.push(rec.sid, 3, off, p);
      off += p.length;
    }
    const firstHalf = Buffer.concat(parts.slice(0, 25));
    await until(async () => contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'timer').length === firstHalf.length, 'the timer flush');
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'first half').equals(firstHalf), 'flushed exactly');
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM session_output WHERE sid = $1', [rec.sid]);
    t.ok(Number(rows[0]!.n) < 25, `coalesced: ${rows[0]!.n} rows for 25 pushes`);

    await server.kill('SIGKILL');
    for (const p of parts.slice(25)) {
      w.push(rec.sid, 3, off, p);
      off += p.length;
    }
    await t.rejects(w.flush(), 'a flush fails while the server is down');
    t.ok(w.stats().pendingBytes > 0, 'the data stays pending');
    t.ok(w.stats().failedFlushes >= 1);

    await server.restart();
    const all = Buffer.concat(parts);
    await until(async () => {
      const got = await store.readArchive(rec.sid, 0, ALL).catch(() => []);
      return Buffer.concat(got.map((c) => c.data)).length === all.length;
    }, 'the retry to write the rest', 20_000);
    t.ok(contiguous(t, await store.readArchive(rec.sid, 0, ALL), 0, 'all').equals(all), 'every byte, once, in order');
    t.match(w.stats(), { pendingBytes: 0, droppedBytes: 0 });
    await w.close();
  });
});

t.test('retention: several nodes at once delete each old ended session exactly once', async (t) => {
  const url = await server.createDatabase();
  const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: url, max: 2 }));
  t.teardown(() => Promise.all(pools.map((p) => p.end())));
  await migrate(pools[0]!);
  const stores = pools.map((p) => new PostgresStore(p));
  const now = Date.now();
  const day = 86_400_000;
  const old = Array.from({ length: 1200 }, (_, i) => sessionRecord({ status: i % 2 === 0 ? 'exited' : 'lost', lastActivity: now - 8 * day - i }));
  const kept = [
    sessionRecord({ status: 'exited', lastActivity: now - 6 * day }),
    sessionRecord({ status: 'running', lastActivity: now - 30 * day }),
  ];
  for (const r of [...old, ...kept]) await stores[0]!.createSession(r);
  await stores[0]!.archive(old[0]!.sid, 1, 0, Buffer.from('old output'));
  await stores[0]!.archive(kept[0]!.sid, 1, 0, Buffer.from('recent output'));
  const logger = createLogger('error');
  const jobs = stores.map((s) => new Retention(s, 7 * day, logger));
  const counts = await Promise.all(jobs.map((j) => j.runOnce(now)));
  t.equal(counts.reduce((a, b) => a + b, 0), old.length, `each of ${old.length} deleted once in all (${counts.join(' + ')})`);
  const { rows } = await pools[0]!.query<{ sid: string }>('SELECT sid FROM sessions');
  t.strictSame(rows.map((r) => r.sid).sort(), kept.map((r) => r.sid).sort(), 'the recent ended one and the running one are left');
  t.strictSame(await stores[0]!.readArchive(old[0]!.sid, 0, ALL), [], 'the old archive is gone');
  t.equal(contiguous(t, await stores[0]!.readArchive(kept[0]!.sid, 0, ALL), 0, 'kept').toString(), 'recent output');
  t.equal(await jobs[0]!.runOnce(now), 0, 'nothing left to delete');
  t.equal(await new Retention(stores[0]!, 0, logger).runOnce(now + 365 * day), 0, '0 keeps forever');
  t.equal((await pools[0]!.query('SELECT 1 FROM sessions')).rowCount, 2);
});
