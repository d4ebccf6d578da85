/**
 * The plain-text summary: latency, reach, the processes (RSS, cores, CPU µs per
 * keystroke) and the scenario's own figures; with a baseline, its column beside
 * Switchboard's and the ratio switchboard ÷ baseline.
 */
import type { BenchResult, NodeStat } from '../result.js';
import { fmtBytes } from '../units.js';

const row = (name: string, a: string, b?: string, c?: string): string =>
  `  ${name.padEnd(24)} ${a.padStart(14)}${b !== undefined ? b.padStart(16) : ''}${c !== undefined ? c.padStart(12) : ''}`;

function proc(n: NodeStat): string {
  const parts = [fmtBytes(n.rssBytes)];
  if (n.cpu !== null) parts.push(`${n.cpu} cores`);
  if (n.usPerKeystroke !== null) parts.push(`${n.usPerKeystroke} µs/key`);
  return parts.join(', ');
}

function extraLines(r: BenchResult): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(r.extra)) {
    if (k === 'steps' && Array.isArray(v)) {
      for (const s of v as Array<{ sessions: number; p50: number; p99: number; p999: number; reach: number }>) {
        lines.push(`  step ${String(s.sessions).padStart(6)}: p50 ${s.p50} ms  p99 ${s.p99} ms  p99.9 ${s.p999} ms  reach ${(s.reach * 100).toFixed(2)}%`);
      }
    } else if (k === 'redisTopCommands' && Array.isArray(v)) {
      const top = v as Array<{ command: string; perSecond: number }>;
      lines.push(`  ${'redis top commands'.padEnd(24)} ${top.length ? top.map((c) => `${c.command} ${c.perSecond}/s`).join(', ') : '-'}`);
    } else if (k === 'rssBytes' && Array.isArray(v)) {
      for (const n of v as Array<{ id: string; before: number; highest?: number; after: number }>) {
        lines.push(row(`${n.id} RSS`, `${fmtBytes(n.before)} → ${fmtBytes(n.after)}${n.highest ? ` (highest ${fmtBytes(n.highest)})` : ''}`));
      }
    } else {
      lines.push(`  ${k.padEnd(24)} ${v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
  }
  return lines;
}

export function table(r: BenchResult): string {
  const lines: string[] = [];
  const b = r.baseline;
  const q = r.ratio;
  lines.push(`scenario ${r.scenario}  ${Object.entries(r.parameters).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ')}`);
  if (b) {
    lines.push(`  baseline: ${String(b.parameters.system ?? '')}`);
    lines.push(row('', 'switchboard', 'baseline', 'sb ÷ base'));
  }
  // No latency at all (idle): no latency rows.
  const timed = r.curve.length > 0 || b !== undefined;
  if (timed) {
    for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) {
      lines.push(row(`${k === 'p999' ? 'p99.9' : k} (ms)`, r[k].toFixed(3), b?.[k].toFixed(3), q ? `×${q[k]}` : undefined));
    }
  }
  lines.push(row('reach', `${(r.reach * 100).toFixed(3)}%`, b ? `${(b.reach * 100).toFixed(3)}%` : undefined));
  lines.push(row('errors', String(r.errors), b ? String(b.errors) : undefined));
  if (timed) lines.push(row('p99 from actual send', r.fromSend.p99.toFixed(3), b?.fromSend.p99.toFixed(3)));
  const perKey = (x: BenchResult): string => (x.usPerKeystroke === null ? '-' : `${x.usPerKeystroke} µs`);
  if (r.usPerKeystroke !== null || b) lines.push(row('CPU per keystroke (all)', perKey(r), b ? perKey(b) : undefined, b && r.usPerKeystroke !== null && b.usPerKeystroke ? `×${(r.usPerKeystroke / b.usPerKeystroke).toFixed(2)}` : undefined));
  if (timed) {
    lines.push(row('loadgen CPU (cores)', String(r.loadgen.cpu), b ? String(b.loadgen.cpu) : undefined));
    lines.push(row('loadgen max send lag', `${r.loadgen.maxSendLagMs} ms`, b ? `${b.loadgen.maxSendLagMs} ms` : undefined));
  }
  lines.push('  processes (RSS; cores over the measured window; CPU µs per keystroke echoed in it):');
  for (const n of r.nodes) lines.push(`    ${`${n.id} (${n.role})`.padEnd(34)} ${proc(n)}`);
  if (b) for (const n of b.nodes) lines.push(`    ${`${n.id} (${n.role}, baseline)`.padEnd(34)} ${proc(n)}`);
  lines.push(...extraLines(r));
  if (r.errorSamples.length) lines.push(`  error samples: ${r.errorSamples.slice(0, 3).join(' | ')}`);
  if (b?.errorSamples.length) lines.push(`  baseline error samples: ${b.errorSamples.slice(0, 3).join(' | ')}`);
  return lines.join('\n') + '\n';
}
