/**
 * A shell with state worth keeping, for tests that take its node away: a variable, its
 * pid, and a job printing tick1, tick2, … every 200 ms until a file appears.
 */
import type { Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestClient, Frame } from './ws.js';

export interface TickingShell {
  sid: string;
  /** The shell's own pid ($$). */
  pid: number;
  /** Ends the job: it prints `loopdone` and the prompt comes back. */
  stop(): void;
}

/** `open` chooses where the shell runs (default: wherever placement puts it). */
export async function tickingShell(
  client: TestClient,
  open: (spec: Record<string, unknown>) => Promise<string> = async (spec) => (await client.request({ t: 'open', ...spec })).sid,
  spec: Record<string, unknown> = {},
): Promise<TickingShell> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-ticking-'));
  const stopFile = join(dir, 'stop');
  const sid = await open({ cmd: '/bin/sh', ...spec });
  client.send({ t: 'in', sid, data: Buffer.from('X=kept; echo "pid=$$ re""ady"\n') });
  const text = await client.waitForOutput(sid, /pid=(\d+) ready/);
  const pid = Number(/pid=(\d+) ready/.exec(text)![1]);
  client.send({ t: 'in', sid, data: Buffer.from(`i=0; while [ ! -e ${stopFile} ]; do i=$((i+1)); echo tick$i; sleep 0.2; done; echo loop""done\n`) });
  await client.waitForOutput(sid, 'tick2');
  return {
    sid, pid,
    stop: () => {
      writeFileSync(stopFile, '');
      setTimeout(() => rmSync(dir, { recursive: true, force: true }), 2_000).unref();
    },
  };
}

/** The highest tick in `text`, 0 for none. */
export function lastTick(text: string): number {
  const ticks = [...text.matchAll(/^tick(\d+)\r?$/gm)];
  return ticks.length === 0 ? 0 : Number(ticks.at(-1)![1]);
}

/** Waits for a tick printed after `text` was taken: the job is running now. */
export async function tickAfter(client: TestClient, sid: string, text: string): Promise<number> {
  const after = lastTick(text) + 1;
  await client.waitForOutput(sid, new RegExp(`^tick${after}\\r?$`, 'm'), 20_000);
  return after;
}

/**
 * The job is stopped, then: every tick exactly once and in order in `bytes`, the
 * variable and pid of the same shell, no gap and no exit among `frames`.
 */
export async function sameShellCarriedOn(t: Test, client: TestClient, shell: TickingShell, whole: () => Buffer, frames: Frame[]): Promise<void> {
  shell.stop();
  await client.waitForOutput(shell.sid, 'loopdone', 20_000);
  client.send({ t: 'in', sid: shell.sid, data: Buffer.from('echo "X is $X in $$"\n') });
  await client.waitForOutput(shell.sid, /X is kept in \d+/);
  const text = whole().toString('utf8');
  t.match(text, new RegExp(`X is kept in ${shell.pid}\\b`), 'the same shell, its variable still set');
  const ticks = [...text.matchAll(/^tick(\d+)\r?$/gm)].map((m) => Number(m[1]));
  t.ok(ticks.length >= 2, `ticks arrived (${ticks.length})`);
  t.same(ticks, Array.from({ length: ticks.length }, (_, i) => i + 1), 'every tick exactly once, in order: no gap, no duplicate');
  t.same(frames.filter((f) => f.sid === shell.sid && (f.t === 'gap' || f.t === 'exit')), [], 'no gap frame, no exit');
}

/** `out` frames of a session start at `first` and follow each other without a hole or overlap. */
export function contiguous(frames: Frame[], sid: string, first = 0): boolean {
  let next = first;
  for (const f of frames) {
    if (f.t !== 'out' || f.sid !== sid || f.snap) continue;
    if (f.off !== next) return false;
    next = f.off + f.data.length;
  }
  return true;
}

/** Placement is by load: open (killing the misses) until a session lands on `node`. */
export async function openOn(client: TestClient, node: string, spec: Record<string, unknown>): Promise<string> {
  for (let i = 0; i < 40; i++) {
    const opened = await client.request({ t: 'open', ...spec });
    if (opened.node === node) return opened.sid;
    await client.request({ t: 'kill', sid: opened.sid, signal: 'SIGKILL' });
  }
  throw new Error(`placement never chose ${node}`);
}
