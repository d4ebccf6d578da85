/**
 * The node's Prometheus metrics, on prom-client: one Registry per node (labelled
 * `node="<id>"`), with the default process metrics (CPU, RSS, heap, GC, event-loop lag).
 *
 * Three kinds of instruments, by cost:
 * - per-frame counters (`framesIn`, `bytesOut`, …) stay hand-written: `inc()` is one
 *   addition on the hot path, and prom-client reads the value at scrape time;
 * - latency histograms (prom-client) are observed once per event: a keystroke, an open,
 *   a heartbeat, a bus probe. No label carries a session id, so cardinality is fixed;
 * - values owned elsewhere (host sessions, queue depths, limiter and pool state) are read
 *   at scrape time through `register(name, help, type, read)`.
 *
 * The keystroke round trip also feeds a small window of recent samples, so the node can
 * put its own p99 into its registry heartbeat (`switchboard top`, `/dashboard`).
 */
import { Counter as PromCounter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type MetricType = 'counter' | 'gauge';

export class Counter {
  private n = 0;
  inc(by = 1): void {
    this.n += by;
  }
  get value(): number {
    return this.n;
  }
}

export class Gauge {
  private n = 0;
  set(v: number): void {
    this.n = v;
  }
  get value(): number {
    return this.n;
  }
}

/** A value read at scrape time, shaped as prom-client's metric objects are. */
class Scraped {
  constructor(readonly name: string, readonly help: string, readonly type: MetricType, private readonly read: () => number) {}
  get(): { name: string; help: string; type: MetricType; aggregator: 'sum'; values: Array<{ value: number; labels: Record<string, string> }> } {
    // A reader that fails (its component is closing) leaves the sample out: the scrape
    // still succeeds, and Prometheus sees the series as absent rather than a made-up value.
    let values: Array<{ value: number; labels: Record<string, string> }> = [];
    try {
      const value = this.read();
      if (Number.isFinite(value)) values = [{ value, labels: {} }];
    } catch {
      // left out
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }
  reset(): void {}
}

/** Latency buckets (seconds): sub-millisecond relays up to multi-second stalls. */
const FAST_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SLOW_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** How many recent keystroke samples the heartbeat's p99 is computed over, at most. */
const WINDOW_SAMPLES = 2048;
/** …and how old they may be. */
export const KEYSTROKE_WINDOW_MS = 60_000;

/**
 * The most recent samples (a ring), for a p99 over the last minute. Recording is two
 * array stores; the percentile is computed when asked (each heartbeat: a sort of at
 * most WINDOW_SAMPLES numbers a few times a second).
 */
export class LatencyWindow {
  private readonly values = new Float64Array(WINDOW_SAMPLES);
  private readonly times = new Float64Array(WINDOW_SAMPLES);
  private next = 0;
  private count = 0;

  constructor(private readonly windowMs = KEYSTROKE_WINDOW_MS, private readonly now: () => number = Date.now) {}

  record(ms: number): void {
    this.values[this.next] = ms;
    this.times[this.next] = this.now();
    this.next = (this.next + 1) % WINDOW_SAMPLES;
    if (this.count < WINDOW_SAMPLES) this.count++;
  }

  /** p99 in milliseconds of the samples of the last window; null when there are none. */
  p99(): number | null {
    const now = this.now();
    const recent: number[] = [];
    for (let i = 0; i < this.count; i++) if (now - this.times[i]! <= this.windowMs) recent.push(this.values[i]!);
    return percentile(recent, 0.99);
  }
}

/** The nearest-rank percentile (q in 0-1) of unsorted values; null when empty. */
export function percentile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export class Metrics {
  readonly registry = new Registry();

  readonly clients = new Gauge();
  readonly sessionsWatched = new Gauge();
  readonly framesIn = new Counter();
  readonly badFrames = new Counter();
  readonly rateLimited = new Counter();
  readonly bytesOut = new Counter();
  readonly lagging = new Counter();
  readonly opened = new Counter();
  readonly upgradesRefused = new Counter();
  /** Bus messages (inbox, control, events) that did not decode: dropped. */
  readonly undecodable = new Counter();
  readonly takeovers = new Counter();

  /** A client's `in` frame to the next output this node sends that client for the session. */
  readonly keystroke = new Histogram({
    name: 'switchboard_keystroke_seconds',
    help: "Keystroke round trip through this node: a client's in frame to the next output sent back to that client for the session",
    buckets: FAST_BUCKETS, registers: [this.registry],
  });
  readonly open = new Histogram({
    name: 'switchboard_open_seconds',
    help: 'Session opens placed by this edge: from the request to the host having started it (successful opens)',
    buckets: SLOW_BUCKETS, registers: [this.registry],
  });
  readonly busLag = new Histogram({
    name: 'switchboard_bus_lag_seconds',
    help: "Bus publish to delivery, measured by this node's probe message (one a second, to itself through the bus)",
    buckets: FAST_BUCKETS, registers: [this.registry],
  });
  readonly heartbeat = new Histogram({
    name: 'switchboard_heartbeat_seconds',
    help: 'Node lease renewal (the registry heartbeat) round trip, successful renewals',
    buckets: SLOW_BUCKETS, registers: [this.registry],
  });
  readonly fencedWrites = new PromCounter({
    name: 'switchboard_fenced_writes_total',
    help: 'Writes refused because another node holds a higher epoch for the session (seam: log or store)',
    labelNames: ['seam'] as const, registers: [this.registry],
  });
  readonly storeErrors = new PromCounter({
    name: 'switchboard_store_errors_total',
    help: 'Session store (PostgreSQL) calls that failed, by operation',
    labelNames: ['op'] as const, registers: [this.registry],
  });

  private readonly keystrokes = new LatencyWindow();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const hot: Array<[string, string, MetricType, Counter | Gauge]> = [
      ['switchboard_clients', 'WebSocket clients connected to this node', 'gauge', this.clients],
      ['switchboard_edge_sessions', 'Sessions watched by clients of this node', 'gauge', this.sessionsWatched],
      ['switchboard_frames_in_total', 'Valid client frames received', 'counter', this.framesIn],
      ['switchboard_bad_frames_total', 'Malformed client frames', 'counter', this.badFrames],
      ['switchboard_rate_limited_total', 'Frames refused by rate limits', 'counter', this.rateLimited],
      ['switchboard_output_bytes_total', 'Live output bytes sent to clients', 'counter', this.bytesOut],
      ['switchboard_lagging_total', 'Times a client fell behind and had to catch up from the log', 'counter', this.lagging],
      ['switchboard_sessions_opened_total', 'Sessions opened through this node', 'counter', this.opened],
      ['switchboard_upgrades_refused_total', 'WebSocket upgrades refused (auth, origin, rate)', 'counter', this.upgradesRefused],
      ['switchboard_bus_undecodable_total', 'Bus messages that did not decode and were dropped', 'counter', this.undecodable],
      ['switchboard_takeovers_total', 'Owner records this node took over (failover, adoption after a restart, reclaim after Redis lost one): a new epoch each', 'counter', this.takeovers],
    ];
    for (const [name, help, type, m] of hot) this.register(name, help, type, () => m.value);
  }

  /** One keystroke round trip, in milliseconds (performance.now() differences). */
  observeKeystroke(ms: number): void {
    this.keystroke.observe(ms / 1000);
    this.keystrokes.record(ms);
  }

  /** p99 of the keystroke round trips of the last minute, ms; null without samples. */
  keystrokeP99Ms(): number | null {
    return this.keystrokes.p99();
  }

  /** Values owned elsewhere (host session count, limiter fallback), read at scrape time. */
  register(name: string, help: string, type: MetricType, value: () => number): void {
    // A later registration of the same name replaces the earlier one (a component rebuilt).
    this.registry.removeSingleMetric(name);
    this.registry.registerMetric(new Scraped(name, help, type, value) as never);
  }

  /** The exposition text (format 0.0.4), every sample labelled with the node id. */
  async render(nodeId: string): Promise<string> {
    this.registry.setDefaultLabels({ node: nodeId });
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
