/**
 * The host's side of flow control (src/host/hosted-session.ts): while an edge reports a
 * writer above its watermark, output that still arrives (a kept terminal's reads in
 * flight when the pause landed, up to a keeper window) stays on the host and is not sent
 * on to the log, the bus and that writer; it follows, in order, once the pause lifts.
 * The backend is a stand-in: what it simulates, output arriving after pause(), is the
 * keeper's in-flight window, which a real PTY cannot be made to produce on cue.
 */
import t from 'tap';
import type { Backend, BackendExit } from '../src/backend/backend.js';
import { HostedSession } from '../src/host/hosted-session.js';
import type { SessionLog } from '../src/log/log.js';
import type { OpenSpec } from '../src/protocol/frames.js';
import { createLogger } from '../src/util/log.js';

class InFlightBackend implements Backend {
  readonly pid = undefined;
  paused = false;
  private listener: (data: Uint8Array) => void = () => {};
  write(): void {}
  resize(): void {}
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  kill(): void {}
  onData(listener: (data: Uint8Array) => void): void { this.listener = listener; }
  onExit(_listener: (exit: BackendExit) => void): void {}
  emit(text: string): void { this.listener(Buffer.from(text)); }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test('output arriving while paused waits on the host and follows, in order, on resume', async (t) => {
  const appended: Array<[number, string]> = [];
  const log = { append: async (_sid: string, _epoch: number, off: number, data: Uint8Array) => { appended.push([off, Buffer.from(data).toString()]); } } as unknown as SessionLog;
  const backend = new InFlightBackend();
  const spec: OpenSpec = { kind: 'pty', cols: 80, rows: 24, policy: 'latest', onLoss: 'lost' };
  const session = new HostedSession('s1', spec, 1, 0, backend, {
    log, logger: createLogger('error'), nodeId: 'n1',
    onExit: () => {}, onFenced: () => {}, reclaim: async () => 1,
  });
  const view = { t: 'watch' as const, e: 'edge-1', writers: 1, viewers: 0, sizes: [] as Array<[number, number, number]> };

  backend.emit('before ');
  await turn();
  t.strictSame(appended, [[0, 'before ']], 'flowing: a turn\'s output goes to the log');

  session.watch({ ...view, paused: true });
  t.ok(backend.paused, 'a writer above the watermark pauses the backend');
  backend.emit('in flight ');
  backend.emit('when paused');
  await turn();
  await turn();
  t.strictSame(appended, [[0, 'before ']], 'what arrives while paused is not sent on');

  session.watch({ ...view, paused: false });
  t.notOk(backend.paused, 'below the low watermark the backend resumes');
  await turn();
  t.strictSame(appended, [[0, 'before '], [7, 'in flight when paused']], 'and the held output follows at the next offsets, once');
  t.equal(session.head, 28);
});
