/**
 * What this machine's PTY layer gives one reader of a command, with nothing of
 * Switchboard in the way: node-pty reading the command's output for `seconds`. The flood
 * scenario measures it in the same run, beside what the gateway carried, because the
 * kernel's terminal output processing can be the ceiling: measured, `yes` (a newline every
 * 2 bytes, each expanded to CR LF) gave a bare reader ~8.5 MB/s on a 2-core machine where
 * 100-character lines gave ~100 MB/s.
 */
import pty from 'node-pty';

export interface PtyCeiling {
  mbps: number;
  /** Mean bytes per read: the unit every later hop pays for. */
  meanReadBytes: number;
  readerCores: number;
}

export function measurePtyCeiling(shellCommand: string, seconds: number): Promise<PtyCeiling> {
  const proc = pty.spawn('sh', ['-c', shellCommand], { cols: 80, rows: 24, encoding: null } as pty.IPtyForkOptions);
  let bytes = 0;
  let reads = 0;
  proc.onData((d: string | Buffer) => { bytes += d.length; reads++; });
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  return new Promise((resolve) => {
    setTimeout(() => {
      const wallS = Number(process.hrtime.bigint() - started) / 1e9;
      const cpu = process.cpuUsage(cpuBefore);
      // The whole process group: `sh -c 'a | b'` leaves a and b running if only sh dies.
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { proc.kill('SIGKILL'); }
      resolve({
        mbps: Math.round((bytes / wallS / 1e6) * 10) / 10,
        meanReadBytes: reads ? Math.round(bytes / reads) : 0,
        readerCores: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 100) / 100,
      });
    }, seconds * 1000);
  });
}
