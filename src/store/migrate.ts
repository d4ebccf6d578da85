/**
 * Plain SQL migrations: migrations/NNN_name.sql at the package root, applied in name
 * order, each in its own transaction together with its row in `schema_migrations`, so a
 * migration is either applied and recorded or neither.
 *
 * Several nodes may start at once: the whole run holds a session-level advisory lock, so
 * the second node waits, then finds everything recorded and applies nothing. If the
 * process dies mid-run the connection closes and PostgreSQL releases the lock.
 *
 * Files must not contain their own BEGIN/COMMIT.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool, PoolClient } from 'pg';

/** Two levels up from src/store/ (tsx) or dist/store/ (tsc) is the package root. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Arbitrary but fixed, the same for every Switchboard node: 'SWBD' in ASCII (0x53574244). */
const MIGRATION_LOCK_KEY = '1398227524';

const MIGRATION_FILE = /^(\d+_[A-Za-z0-9_-]+)\.sql$/;

export interface Migration {
  /** The file name without `.sql`, e.g. `001_sessions`. */
  version: string;
  sql: string;
}

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => MIGRATION_FILE.test(n)).sort();
  return Promise.all(names.map(async (name) => ({
    version: name.replace(/\.sql$/, ''),
    sql: await readFile(join(dir, name), 'utf8'),
  })));
}

/** Applies the migrations not yet recorded; returns the versions it applied now. */
export async function migrate(pool: Pool, options: { dir?: string } = {}): Promise<string[]> {
  const migrations = await loadMigrations(options.dir);
  const client = await pool.connect();
  let failure: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    try {
      return await applyPending(client, migrations);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]);
    }
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    throw err;
  } finally {
    // After a failure the connection may still hold the lock or an aborted transaction:
    // destroy it rather than hand it back to the pool.
    client.release(failure);
  }
}

async function applyPending(client: PoolClient, migrations: Migration[]): Promise<string[]> {
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const { rows } = await client.query<{ version: string }>('SELECT version FROM schema_migrations');
  const done = new Set(rows.map((r) => r.version));
  const applied: string[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    await client.query('BEGIN');
    try {
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())', [m.version]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`migration ${m.version} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    applied.push(m.version);
  }
  return applied;
}
