/**
 * HDR histograms (hdr-histogram-js, values in µs, 3 significant digits): the workers
 * encode theirs (compressed base64, ResultMsg.hist), the parent merges and reads them.
 */
import hdr from 'hdr-histogram-js';
import { round } from './units.js';

export type Histogram = hdr.Histogram;

export interface Percentiles { p50: number; p90: number; p99: number; p999: number; max: number; mean: number; count: number }

export function newHistogram(): Histogram {
  return hdr.build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Merges the workers' encoded histograms ('' entries are skipped). */
export function mergeHistograms(encoded: string[]): Histogram {
  const h = newHistogram();
  for (const e of encoded) {
    if (!e) continue;
    h.add(hdr.decodeFromCompressedBase64(e, 32, false));
  }
  return h;
}

/** Percentiles in ms. */
export function percentiles(h: Histogram): Percentiles {
  const ms = (us: number): number => round(us / 1000, 3);
  return {
    p50: ms(h.getValueAtPercentile(50)), p90: ms(h.getValueAtPercentile(90)), p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)), max: ms(h.maxValue), mean: ms(h.mean), count: h.totalCount,
  };
}

/** The percentile curve for the report's plot: [percentile, ms]. */
export function curve(h: Histogram): Array<[number, number]> {
  if (h.totalCount === 0) return [];
  const pts: Array<[number, number]> = [];
  for (const p of [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100]) {
    pts.push([p, round(h.getValueAtPercentile(p) / 1000, 3)]);
  }
  return pts;
}
