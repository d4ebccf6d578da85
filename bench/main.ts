/**
 * `switchboard bench <scenario>` (src/cli/bench.ts loads this, compiled to dist/bench/):
 * starts a local cluster (or targets `--url`s), runs one scenario with forked load
 * generator workers, optionally the same load against a baseline, and prints a summary,
 * `--json`, or an HTML report.
 *
 *   bench ──fork──▶ worker × W ──ws──▶ edge node(s) ──Redis──▶ host node(s) (echo backend)
 *         ◀──IPC: histograms, counts, CPU──        then the same against the baseline
 *
 * Layout: options.ts (flags), pool.ts (workers), histograms.ts, measure.ts + result.ts
 * (one measurement → one BenchResult), target.ts (what is driven), proc-stats.ts and
 * datastore-stats.ts (what the processes and datastores did), scenarios/ (one file each),
 * baselines/ (relay, socketio), output/ (table, HTML report).
 */
import { writeFile } from 'node:fs/promises';
import { runRelayBaseline, RELAY_SYSTEM } from './baselines/relay.js';
import { runSocketIoBaseline, SOCKETIO_SYSTEM } from './baselines/socketio.js';
import type { Ctx } from './measure.js';
import { parseOptions, USAGE, type Options, type Scenario } from './options.js';
import { renderReport } from './output/report.js';
import { table } from './output/table.js';
import { ratio, type BenchResult } from './result.js';
import { runCapacity } from './scenarios/capacity.js';
import { runEcho } from './scenarios/echo.js';
import { runFailover } from './scenarios/failover.js';
import { runFanout } from './scenarios/fanout.js';
import { runFlood } from './scenarios/flood.js';
import { runIdle } from './scenarios/idle.js';
import { runPty } from './scenarios/pty.js';
import { runStorm } from './scenarios/storm.js';
import { startTarget, type Target } from './target.js';

const SCENARIO_RUNS: Record<Scenario, (ctx: Ctx, target: Target) => Promise<BenchResult>> = {
  echo: runEcho, pty: runPty, idle: runIdle, storm: runStorm, fanout: runFanout, flood: runFlood, capacity: runCapacity, failover: runFailover,
};

async function runBaseline(ctx: Ctx, result: BenchResult): Promise<void> {
  const { baseline } = ctx.o;
  if (baseline === undefined) return;
  const b = baseline === 'relay' ? await runRelayBaseline(ctx) : await runSocketIoBaseline(ctx);
  result.baseline = b;
  result.ratio = ratio(result, b, `switchboard ÷ ${baseline === 'relay' ? RELAY_SYSTEM : SOCKETIO_SYSTEM}`);
}

/** Exit codes for a run stopped by a signal (128 + its number, as a shell reports it). */
const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

async function runScenario(o: Options, ctx: Ctx): Promise<BenchResult> {
  let target: Target | undefined;
  // Every stop signal, not only Ctrl-C: left to its default, SIGTERM ends the process
  // without its exit handlers, and Redis, PostgreSQL (a daemon) and the keepers (detached
  // on purpose) outlived the run.
  const interrupt = (signal: keyof typeof STOP_SIGNALS): void => {
    ctx.log(`${signal}: stopping what the run started`);
    void (target?.stop() ?? Promise.resolve()).finally(() => process.exit(STOP_SIGNALS[signal]));
  };
  for (const signal of Object.keys(STOP_SIGNALS) as Array<keyof typeof STOP_SIGNALS>) process.once(signal, interrupt);
  try {
    target = await startTarget(o, ctx.log);
    const result = await SCENARIO_RUNS[o.scenario](ctx, target);
    // Switchboard stops before the baseline starts: they never share the cores.
    await target.stop();
    target = undefined;
    await runBaseline(ctx, result);
    return result;
  } finally {
    for (const signal of Object.keys(STOP_SIGNALS)) process.off(signal, interrupt);
    await target?.stop();
  }
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseOptions(argv);
  if (typeof parsed === 'string') {
    if (parsed) process.stderr.write(`switchboard bench: ${parsed}\n\n`);
    process.stderr.write(USAGE);
    return parsed ? 2 : 0;
  }
  const o = parsed;
  const isTty = process.stderr.isTTY;
  const ctx: Ctx = {
    o,
    log: (s) => process.stderr.write(`${isTty ? '\r\x1b[K' : ''}[bench] ${s}\n`),
    progress: (s) => process.stderr.write(isTty ? `\r\x1b[K[bench] ${s}` : `[bench] ${s}\n`),
  };
  const result = await runScenario(o, ctx);
  if (isTty) process.stderr.write('\r\x1b[K');
  if (o.report) {
    await writeFile(o.report, renderReport(result));
    ctx.log(`report written to ${o.report}`);
  }
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(table(result));
  // Switchboard's own run decides; a baseline that drops keystrokes is a finding, not a failure.
  return result.errors > 0 || result.reach < 1 ? 1 : 0;
}
