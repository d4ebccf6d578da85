/**
 * A few Prometheus metrics, hand-written because the hot path increments them per frame
 * and a counter here is one addition. Exposition format 0.0.4.
 */
interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  value: () => number;
}

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

export class Metrics {
  readonly clients = new Gauge();
  readonly sessionsWatched = new Gauge();
  readonly framesIn = new Counter();
  readonly badFrames = new Counter();
  readonly rateLimited = new Counter();
  readonly bytesOut = new Counter();
  readonly lagging = new Counter();
  readonly opened = new Counter();
  readonly upgradesRefused = new Counter();
  private readonly extra: Metric[] = [];

  /** Values owned elsewhere (host session count, limiter fallback), read at scrape time. */
  register(name: string, help: string, type: 'counter' | 'gauge', value: () => number): void {
    this.extra.push({ name, help, type, value });
  }

  render(nodeId: string): string {
    const all: Metric[] = [
      { name: 'switchboard_clients', help: 'WebSocket clients connected to this node', type: 'gauge', value: () => this.clients.value },
      { name: 'switchboard_edge_sessions', help: 'Sessions watched by clients of this node', type: 'gauge', value: () => this.sessionsWatched.value },
      { name: 'switchboard_frames_in_total', help: 'Valid client frames received', type: 'counter', value: () => this.framesIn.value },
      { name: 'switchboard_bad_frames_total', help: 'Malformed client frames', type: 'counter', value: () => this.badFrames.value },
      { name: 'switchboard_rate_limited_total', help: 'Frames refused by rate limits', type: 'counter', value: () => this.rateLimited.value },
      { name: 'switchboard_output_bytes_total', help: 'Live output bytes sent to clients', type: 'counter', value: () => this.bytesOut.value },
      { name: 'switchboard_lagging_total', help: 'Times a client fell behind and had to catch up from the log', type: 'counter', value: () => this.lagging.value },
      { name: 'switchboard_sessions_opened_total', help: 'Sessions opened through this node', type: 'counter', value: () => this.opened.value },
      { name: 'switchboard_upgrades_refused_total', help: 'WebSocket upgrades refused (auth, origin, rate)', type: 'counter', value: () => this.upgradesRefused.value },
      ...this.extra,
    ];
    const label = `{node="${nodeId.replace(/["\\\n]/g, '_')}"}`;
    return all.map((m) => `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n${m.name}${label} ${m.value()}\n`).join('');
  }
}
