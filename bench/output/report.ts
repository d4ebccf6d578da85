/**
 * The bench's `--report FILE.html`: one self-contained page (no scripts, no external
 * assets) with the run's settings, the summary and an inline SVG latency-by-percentile
 * plot (x: percentile on the usual HDR "nines" scale, y: milliseconds); with a baseline,
 * its curve, its figures and the ratio switchboard ÷ baseline.
 */
import type { BenchResult } from '../result.js';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Percentile → x on the nines scale: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3… */
function nines(p: number): number {
  return p >= 100 ? 5 : Math.min(5, -Math.log10(1 - p / 100));
}

export function latencySvg(series: Array<{ name: string; color: string; curve: Array<[number, number]> }>): string {
  const W = 720;
  const H = 360;
  const m = { l: 60, r: 20, t: 20, b: 50 };
  const maxMs = Math.max(1, ...series.flatMap((s) => s.curve.map(([, v]) => v)));
  // A log y axis keeps sub-millisecond medians and long tails on one plot.
  const yMin = Math.max(0.01, Math.min(...series.flatMap((s) => s.curve.map(([, v]) => v)).filter((v) => v > 0), 1) / 2);
  const ly = (v: number): number => Math.log10(Math.max(v, yMin));
  const x = (p: number): number => m.l + (nines(p) / 5) * (W - m.l - m.r);
  const y = (v: number): number => H - m.b - ((ly(v) - ly(yMin)) / (ly(maxMs * 1.2) - ly(yMin))) * (H - m.t - m.b);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  for (const [p, label] of [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [99.999, '99.999%']] as const) {
    parts.push(`<line x1="${x(p)}" y1="${m.t}" x2="${x(p)}" y2="${H - m.b}" stroke="#ddd"/><text x="${x(p)}" y="${H - m.b + 15}" text-anchor="middle">${label}</text>`);
  }
  for (let e = Math.floor(ly(yMin)); e <= Math.ceil(ly(maxMs * 1.2)); e++) {
    const v = 10 ** e;
    if (v < yMin || v > maxMs * 1.2) continue;
    parts.push(`<line x1="${m.l}" y1="${y(v)}" x2="${W - m.r}" y2="${y(v)}" stroke="#ddd"/><text x="${m.l - 5}" y="${y(v) + 4}" text-anchor="end">${v} ms</text>`);
  }
  parts.push(`<text x="${W / 2}" y="${H - 10}" text-anchor="middle">percentile</text>`);
  series.forEach((s, i) => {
    const pts = s.curve.filter(([p]) => p < 100).map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"/>`);
    for (const [p, v] of s.curve.filter(([pp]) => pp < 100)) parts.push(`<circle cx="${x(p).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${s.color}"><title>${p}%: ${v} ms</title></circle>`);
    parts.push(`<rect x="${m.l + 10}" y="${m.t + 8 + i * 16}" width="12" height="3" fill="${s.color}"/><text x="${m.l + 28}" y="${m.t + 12 + i * 16}">${esc(s.name)}</text>`);
  });
  parts.push(`<line x1="${m.l}" y1="${y(20)}" x2="${W - m.r}" y2="${y(20)}" stroke="#c00" stroke-dasharray="4 3"/><text x="${W - m.r}" y="${y(20) - 4}" text-anchor="end" fill="#c00">20 ms</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function kv(rows: Array<[string, unknown]>): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'object' ? JSON.stringify(v) : String(v))}</td></tr>`).join('')}</table>`;
}

export function renderReport(r: BenchResult): string {
  const series = [{ name: 'switchboard', color: '#1f6feb', curve: r.curve }];
  const system = String(r.baseline?.parameters.system ?? 'baseline');
  if (r.baseline) series.push({ name: system, color: '#d97706', curve: r.baseline.curve });
  const summary = (x: BenchResult): Array<[string, unknown]> => [
    ['p50 (ms)', x.p50], ['p90 (ms)', x.p90], ['p99 (ms)', x.p99], ['p99.9 (ms)', x.p999], ['max (ms)', x.max],
    ['reach', `${(x.reach * 100).toFixed(3)}%`], ['errors', x.errors],
    ['CPU per keystroke, all processes (µs)', x.usPerKeystroke ?? '-'],
    ['load generator', `${x.loadgen.workers} workers, ${x.loadgen.cpu} cores, max send lag ${x.loadgen.maxSendLagMs} ms`],
    ...x.nodes.map((n): [string, unknown] => [`${n.id} (${n.role})`,
      `RSS ${(n.rssBytes / 1048576).toFixed(1)} MiB, ${n.cpu ?? '?'} cores${n.usPerKeystroke !== null ? `, ${n.usPerKeystroke} µs CPU per keystroke` : ''}`]),
    ...Object.entries(x.extra),
  ];
  const ratio = r.ratio
    ? kv([['of', r.ratio.of], ['p50', `×${r.ratio.p50}`], ['p90', `×${r.ratio.p90}`], ['p99', `×${r.ratio.p99}`], ['p99.9', `×${r.ratio.p999}`], ['max', `×${r.ratio.max}`]])
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard bench: ${esc(r.scenario)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f4f4f4}</style>
</head><body>
<h1>Switchboard bench: ${esc(r.scenario)}</h1>
<p>Run at ${esc(new Date().toISOString())}. Latency is measured from each keystroke's intended send time (open loop, no coordinated omission). CPU is read from /proc over the measured window.</p>
<h2>Latency by percentile</h2>
${latencySvg(series)}
<h2>Settings</h2>
${kv(Object.entries(r.parameters))}
<h2>Results</h2>
${kv(summary(r))}
${r.baseline ? `<h2>Baseline: ${esc(system)}</h2>${kv(summary(r.baseline))}<h2>Ratio (switchboard ÷ baseline)</h2>${ratio}` : ''}
</body></html>
`;
}
