/**
 * Retention (SWITCHBOARD_RETENTION): deletes ended sessions (exited, lost) whose last
 * activity is older than the setting, with their events, share links and archived
 * output. Every node runs it once a minute; the store's delete takes rows no other
 * node is deleting at the same moment (Store.deleteEnded), so running it on several
 * nodes is safe, and each run does at most `batches` bounded deletes.
 */
import type { Logger } from '../util/log.js';
import type { Store } from './store.js';

export const RETENTION_INTERVAL_MS = 60_000;
/** Sessions deleted per statement, and statements per run. */
export const RETENTION_BATCH = 500;
const RETENTION_BATCHES = 10;

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly logger: Logger,
    private readonly intervalMs = RETENTION_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.retentionMs <= 0 || this.timer) return; // 0 keeps everything
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass; returns how many sessions it deleted. Never rejects. */
  async runOnce(now = Date.now()): Promise<number> {
    if (this.retentionMs <= 0 || this.running) return 0;
    this.running = true;
    let deleted = 0;
    try {
      for (let i = 0; i < RETENTION_BATCHES; i++) {
        const n = await this.store.deleteEnded(now - this.retentionMs, RETENTION_BATCH);
        deleted += n;
        if (n < RETENTION_BATCH) break;
      }
      if (deleted > 0) this.logger.info('retention deleted ended sessions', { deleted });
    } catch (err) {
      this.logger.warn('retention pass failed; retrying next minute', { err: String(err) });
    } finally {
      this.running = false;
    }
    return deleted;
  }
}
