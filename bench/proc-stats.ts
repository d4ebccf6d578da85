/**
 * CPU and RSS of the processes under test, read from outside through /proc (so the same
 * for Switchboard nodes, Redis, PostgreSQL and the baselines, with no cooperation from
 * them). PostgreSQL is a process tree: the postmaster and one server process per
 * connection, so it is watched with `tree: true`.
 */
import { readFile, readdir } from 'node:fs/promises';

export interface WatchedProc {
  id: string;
  role: string;
  pid: number;
  /** Count the process's children too (PostgreSQL's backends). */
  tree?: boolean;
}

/** USER_HZ: 100 on every Linux we run on. */
const CLOCK_TICKS = 100;

interface Stat {
  /** utime + stime, ticks. */
  own: number;
  /** cutime + cstime: children that exited and were waited for, ticks. */
  reaped: number;
}

async function readStat(pid: number): Promise<Stat | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are 14-17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    const lists = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')));
    return lists.flatMap((l) => l.split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/**
 * CPU seconds (user + system) used so far; undefined if the process is gone. For a tree:
 * its own, its live children's and its exited children's (a backend that exits inside a
 * window adds its whole life's CPU at once; the bench's are long-lived pool connections).
 */
export async function cpuSeconds(p: WatchedProc): Promise<number | undefined> {
  const s = await readStat(p.pid);
  if (!s) return undefined;
  let ticks = s.own;
  if (p.tree) {
    ticks += s.reaped;
    for (const child of await childrenOf(p.pid)) ticks += (await readStat(child))?.own ?? 0;
  }
  return ticks / CLOCK_TICKS;
}

async function ownRss(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes (VmRSS); for a tree the sum, shared memory counted in each. */
export async function rssBytes(p: { pid: number; tree?: boolean }): Promise<number | undefined> {
  const own = await ownRss(p.pid);
  if (own === undefined || !p.tree) return own;
  const children = await Promise.all((await childrenOf(p.pid)).map(ownRss));
  return own + children.reduce<number>((a, b) => a + (b ?? 0), 0);
}

/** CPU of a set of processes between two marks. */
export class CpuWindow {
  private readonly begin = new Map<number, number>();
  private readonly end = new Map<number, number>();
  private beganAt = 0;
  private endedAt = 0;

  constructor(private readonly procs: WatchedProc[]) {}

  async start(): Promise<void> {
    this.beganAt = Date.now();
    await this.mark(this.begin);
  }

  async stop(): Promise<void> {
    this.endedAt = Date.now();
    await this.mark(this.end);
  }

  private async mark(into: Map<number, number>): Promise<void> {
    await Promise.all(this.procs.map(async (p) => {
      const cpu = await cpuSeconds(p);
      if (cpu !== undefined) into.set(p.pid, cpu);
    }));
  }

  /** Wall seconds between the marks; 0 until both are taken. */
  get wallSeconds(): number {
    return this.beganAt && this.endedAt ? (this.endedAt - this.beganAt) / 1000 : 0;
  }

  /** CPU seconds `pid` used between the marks; undefined if either is missing. */
  cpu(pid: number): number | undefined {
    const a = this.begin.get(pid);
    const b = this.end.get(pid);
    return a !== undefined && b !== undefined ? b - a : undefined;
  }
}
