import type { PendingLogin, PendingLogins } from './pending-logins.js';

const DEFAULT_MAX_ENTRIES = 10_000;

/** Pending sign-ins in this process (the embedded default): bounded, oldest dropped first. */
export class MemoryPendingLogins implements PendingLogins {
  private readonly logins = new Map<string, { login: PendingLogin; expiresAt: number }>();

  constructor(private readonly maxEntries = DEFAULT_MAX_ENTRIES, private readonly now: () => number = Date.now) {}

  async put(state: string, login: PendingLogin, ttlMs: number): Promise<void> {
    const now = this.now();
    // Map order is insertion order: expired entries and, past the bound, the oldest go.
    for (const [key, entry] of this.logins) {
      if (entry.expiresAt > now && this.logins.size < this.maxEntries) break;
      this.logins.delete(key);
    }
    this.logins.delete(state);
    this.logins.set(state, { login: { ...login }, expiresAt: now + ttlMs });
  }

  async take(state: string): Promise<PendingLogin | null> {
    const entry = this.logins.get(state);
    if (!entry) return null;
    this.logins.delete(state);
    return entry.expiresAt > this.now() ? entry.login : null;
  }

  async close(): Promise<void> {
    this.logins.clear();
  }
}
