/** Rounding and byte formatting for the bench's figures. */

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function fmtBytes(n: number): string {
  if (Math.abs(n) >= 1 << 20) return `${round(n / (1 << 20), 1)} MiB`;
  if (Math.abs(n) >= 1024) return `${round(n / 1024, 1)} KiB`;
  return `${Math.round(n)} B`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
