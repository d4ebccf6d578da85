import type { Pool } from 'pg';
import type { Logger } from '../util/log.js';
import type { Store } from '../store/store.js';
import type { Epoch, Offset, SessionId } from '../util/ids.js';
import { PostgresStore } from '../store/postgres-store.js';
import { ArchiveWriter } from '../store/archive-writer.js';
import { migrate } from '../store/migrate.js';

/** PostgreSQL store, migrated, with its write-behind output archive. */
export async function postgresStore(pool: Pool, logger: Logger, archiveIntervalMs: number): Promise<{
  store: Store;
  archive: (sid: SessionId, epoch: Epoch, off: Offset, data: Uint8Array) => void;
  close: () => Promise<void>;
  /** The archive's backlog and what it gave up on (metrics). */
  archiveStats: () => { droppedBytes: number; pendingBytes: number };
}> {
  let applied: string[];
  try {
    applied = await migrate(pool);
  } catch (err) {
    throw new Error(`cannot prepare the PostgreSQL schema: ${(err as Error).message}`, { cause: err });
  }
  if (applied.length > 0) logger.info('migrations applied', { versions: applied });
  const store = new PostgresStore(pool);
  let warned = 0;
  const writer = new ArchiveWriter(store, {
    // Rows per flush grow with busy sessions, not bytes: a longer interval coalesces
    // many keystrokes of one session into one row (PostgreSQL was ~40 µs per keystroke
    // at 250 ms).
    flushIntervalMs: archiveIntervalMs,
    onError: (err) => {
      // One line per burst of failures, not one per flush.
      if (Date.now() - warned > 10_000) logger.warn('output archive write failed; retrying', { err: String(err) });
      warned = Date.now();
    },
  });
  return {
    store,
    archive: (sid, epoch, off, data) => writer.push(sid, epoch, off, data),
    archiveStats: () => {
      const { droppedBytes, pendingBytes } = writer.stats();
      return { droppedBytes, pendingBytes };
    },
    close: async () => {
      await writer.close();
      await store.close();
      await pool.end();
    },
  };
}
