/**
 * `switchboard bench` flags: the usage text and the one parse into typed, validated
 * Options (a string back means "print it and the usage, exit 2"; '' means --help).
 */
import { parseArgs } from 'node:util';

export const SCENARIOS = ['echo', 'idle', 'flood', 'fanout', 'storm', 'failover', 'capacity', 'pty'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export const BASELINES = ['socketio', 'relay'] as const;
export type Baseline = (typeof BASELINES)[number];

export const USAGE = `Usage: switchboard bench <scenario> [options]

Scenarios: ${SCENARIOS.join(', ')}

  --sessions N       sessions (echo 10000, pty 500, flood: echo sessions beside the flood 1000,
                     storm 5000, failover 2000, idle: idle sockets with an echo session each 5000)
  --rate R           keystrokes per second per session (default 1; fanout 10)
  --duration S       measured seconds (default 20; idle: the idle window)
  --warmup S         seconds discarded first (default 5; idle: settling after connecting, 60)
  --edges E          edge nodes clients connect to (default 1)
  --hosts H          host nodes running sessions (default 1; failover 2)
  --single           one embedded node (no Redis): the in-process path
  --url URL          target these nodes' ws URLs instead of a local cluster (repeatable)
  --token T          token for --url targets (default $SWITCHBOARD_TOKEN)
  --workers W        load generator processes (default: ≤ 5000 sockets each)
  --viewers M        fanout: viewers of the one session (default 1000)
  --steps LIST       capacity: session counts to step through (default 5000,10000,15000,20000,25000,30000)
  --flood-cmd CMD    flood: what the flooding PTY runs, through sh -c (default 'yes'); 'echo' floods
                     echo with 16 KiB inputs
  --baseline B       echo: also run the same load against a baseline and compare (ratios are
                     switchboard ÷ baseline): 'relay' (bare uWS + ioredis relay, one PUBLISH per
                     keystroke each way) or 'socketio' (Socket.IO + its Redis adapter)
  --json             print one JSON object
  --report FILE      write a self-contained HTML report
`;

export interface Options {
  scenario: Scenario;
  sessions: number;
  rate: number;
  durationS: number;
  warmupS: number;
  edges: number;
  hosts: number;
  single: boolean;
  urls: string[];
  token: string;
  workers: number | undefined;
  viewers: number;
  steps: number[];
  floodCmd: string;
  baseline: Baseline | undefined;
  json: boolean;
  report: string | undefined;
}

/**
 * idle's default settling: V8 gives back the garbage of a connect burst (old-space
 * garbage promoted while opens were in flight, a young generation grown under load) only
 * when its memory reducer runs, which on a quiet node was 20-60 s after the burst.
 */
const IDLE_SETTLE_S = 60;

const DEFAULT_SESSIONS: Record<Scenario, number> = { echo: 10_000, idle: 5_000, flood: 1_000, fanout: 1, storm: 5_000, failover: 2_000, capacity: 0, pty: 500 };

export function parseOptions(argv: string[]): Options | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        sessions: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string', default: '20' },
        warmup: { type: 'string' }, edges: { type: 'string', default: '1' }, hosts: { type: 'string' },
        single: { type: 'boolean', default: false }, url: { type: 'string', multiple: true }, token: { type: 'string' },
        workers: { type: 'string' }, viewers: { type: 'string', default: '1000' },
        steps: { type: 'string', default: '5000,10000,15000,20000,25000,30000' }, 'flood-cmd': { type: 'string', default: 'yes' },
        baseline: { type: 'string' }, json: { type: 'boolean', default: false }, report: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    return (err as Error).message;
  }
  const { values, positionals } = parsed;
  if (values.help) return '';
  const scenario = positionals[0] as Scenario | undefined;
  if (!scenario || !SCENARIOS.includes(scenario)) return `a scenario is required: ${SCENARIOS.join(', ')}`;
  const num = (raw: string | undefined, fallback: number, name: string): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number`);
    return n;
  };
  const baseline = values.baseline as Baseline | undefined;
  if (baseline !== undefined && !BASELINES.includes(baseline)) return `--baseline takes ${BASELINES.join(' or ')}`;
  if (baseline !== undefined && scenario !== 'echo') return '--baseline applies to the echo scenario';
  try {
    return {
      scenario,
      sessions: num(values.sessions, DEFAULT_SESSIONS[scenario], 'sessions'),
      rate: num(values.rate, scenario === 'fanout' ? 10 : 1, 'rate'),
      durationS: num(values.duration, 20, 'duration'),
      warmupS: num(values.warmup, scenario === 'idle' ? IDLE_SETTLE_S : 5, 'warmup'),
      edges: Math.max(1, num(values.edges, 1, 'edges')),
      hosts: Math.max(1, num(values.hosts, scenario === 'failover' ? 2 : 1, 'hosts')),
      single: values.single,
      urls: values.url ?? [],
      token: values.token ?? process.env.SWITCHBOARD_TOKEN ?? '',
      workers: values.workers === undefined ? undefined : Math.max(1, num(values.workers, 1, 'workers')),
      viewers: num(values.viewers, 1000, 'viewers'),
      steps: values.steps!.split(',').map((s) => Number(s)).filter((n) => n > 0),
      floodCmd: values['flood-cmd']!,
      baseline,
      json: values.json,
      report: values.report,
    };
  } catch (err) {
    return (err as Error).message;
  }
}
