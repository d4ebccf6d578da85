/**
 * The alert rules, the Grafana dashboard and the HPA example name metrics: every one of
 * them must be in a real node's /metrics (a node with Redis and PostgreSQL, so the
 * limiter, pool and archive metrics are there). Also: the rules cover what operators
 * asked for, and the files are well-formed.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { startRedis } from './helpers/redis.js';
import { startPostgres } from './helpers/postgres.js';
import { spawnNode } from './helpers/processes.js';
import { TEST_TOKEN } from './helpers/node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOCKER = join(ROOT, 'docker');

/** Metric names in a PromQL expression: ours, the process collector's, and `up`. */
export function metricNames(expr: string): string[] {
  const names = new Set(expr.match(/\b(?:switchboard|nodejs|process)_[a-z0-9_]+\b/g) ?? []);
  if (/\bup\s*\{/.test(expr)) names.add('up');
  return [...names];
}

/**
 * Sample and family names in Prometheus text exposition. A histogram family stands for
 * its _bucket, _sum and _count series too: a labelled one (GC by kind) has no sample
 * until its first observation, but it is exported.
 */
function exposed(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const family = /^# (?:HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (histogram))?/.exec(line);
    if (family) {
      names.add(family[1]!);
      if (family[2]) for (const suffix of ['_bucket', '_sum', '_count']) names.add(family[1]! + suffix);
    } else if (line && !line.startsWith('#')) names.add(line.split(/[{ ]/)[0]!);
  }
  return names;
}

interface Rule { alert: string; expr: string; for?: string; labels?: { severity?: string }; annotations?: { summary?: string } }
interface Panel { type: string; title: string; datasource?: { uid?: string }; targets?: Array<{ expr: string; datasource?: { uid?: string } }> }

const rules = (parse(readFileSync(join(DOCKER, 'prometheus', 'alerts.yml'), 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(join(DOCKER, 'grafana', 'dashboards', 'switchboard.json'), 'utf8')) as {
  uid: string; title: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string }> };
};
const hpaMetrics = parseAllDocuments(readFileSync(join(DOCKER, 'k8s', 'hpa.yaml'), 'utf8'))
  .map((d) => d.toJS() as { spec?: { metrics?: Array<{ pods?: { metric?: { name?: string } } }> } })
  .flatMap((d) => d.spec?.metrics ?? []).map((m) => m.pods?.metric?.name).filter((n): n is string => n !== undefined);

t.test('the files are well-formed and cover what operators need', async (t) => {
  const names = rules.map((r) => r.alert);
  for (const wanted of ['SwitchboardNodeDown', 'SwitchboardNotReady', 'SwitchboardLimiterFallback', 'SwitchboardKeystrokeP99OverSLO', 'SwitchboardPtyCapacityNearLimit', 'SwitchboardKeeperDown', 'SwitchboardArchiveDropping']) {
    t.ok(names.includes(wanted), `alert ${wanted}`);
  }
  t.equal(new Set(names).size, names.length, 'alert names are unique');
  for (const r of rules) {
    t.ok(metricNames(r.expr).length > 0, `${r.alert} reads a metric`);
    t.ok(r.labels?.severity, `${r.alert} has a severity`);
    t.ok(r.annotations?.summary, `${r.alert} has a summary`);
  }
  t.match(rules.find((r) => r.alert === 'SwitchboardKeystrokeP99OverSLO')!.expr, /histogram_quantile\(0\.99,.*switchboard_keystroke_seconds_bucket/);

  t.equal(dashboard.uid, 'switchboard');
  t.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'), 'a datasource variable');
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  t.ok(panels.length >= 10, `${panels.length} panels`);
  for (const p of panels) {
    t.ok((p.targets ?? []).length > 0 && p.targets!.every((q) => metricNames(q.expr).length > 0), `panel "${p.title}" queries metrics`);
    t.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" uses the datasource variable`);
  }
  t.same(hpaMetrics, ['switchboard_scaling_signal'], 'the HPA scales on the scaling signal');

  // The extractor finds what a check must find.
  t.same(metricNames('rate(switchboard_nope_total[5m]) > 0 and up{job="x"} == 0').sort(), ['switchboard_nope_total', 'up']);
  t.same(metricNames('sum by (le) (rate(nodejs_gc_duration_seconds_bucket[1m]))'), ['nodejs_gc_duration_seconds_bucket']);
});

t.test('every metric they name is in a real node\'s /metrics', async (t) => {
  const [redis, postgres] = await Promise.all([startRedis(), startPostgres()]);
  t.teardown(async () => {
    await redis.stop();
    await postgres.stop();
  });
  const node = await spawnNode('metrics-1', { SWITCHBOARD_REDIS_URL: redis.url, SWITCHBOARD_DATABASE_URL: postgres.url, SWITCHBOARD_LOG_LEVEL: 'warn' });
  t.teardown(() => node.stop());
  const res = await fetch(`${node.http}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const have = exposed(text);
  // `up` is Prometheus's own, per scrape target.
  have.add('up');

  const named = new Map<string, string[]>();
  const note = (name: string, where: string): void => {
    named.set(name, [...(named.get(name) ?? []), where]);
  };
  for (const r of rules) for (const n of metricNames(r.expr)) note(n, `alert ${r.alert}`);
  for (const p of dashboard.panels) for (const q of p.targets ?? []) for (const n of metricNames(q.expr)) note(n, `panel "${p.title}"`);
  for (const n of hpaMetrics) note(n, 'hpa.yaml');
  t.ok(named.size >= 25, `${named.size} distinct metrics named`);
  const missing = [...named].filter(([n]) => !have.has(n)).map(([n, where]) => `${n} (${where.join(', ')})`);
  t.same(missing, [], 'no file names a metric the node does not export');

  // The node labels every sample with its id, so per-node panels and alerts work.
  t.match(text, /^switchboard_scaling_signal\{node="metrics-1"\} 0$/m);
  t.match(text, /^switchboard_limiter_degraded\{node="metrics-1"\} 0$/m, 'with Redis: the limiter\'s state');
  t.match(text, /^switchboard_pg_pool_total\{node="metrics-1"\} \d+$/m, 'with PostgreSQL: the pool');
  t.match(text, /^switchboard_ready\{node="metrics-1"\} 1$/m);
  t.match(text, /^nodejs_eventloop_lag_p99_seconds\{node="metrics-1"\} [\d.e-]+$/m, 'default process metrics');
  t.match(text, /^switchboard_fenced_writes_total\{seam="log",node="metrics-1"\} 0$/m, 'labelled counters exist from the start');
});
