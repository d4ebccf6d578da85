/**
 * The body of a snapshot worker thread (see snapshot-pool.ts): one request at a time,
 * answered with the serialized screen. A headless terminal parsing a megabyte of output
 * costs hundreds of milliseconds of CPU, which must not stall the main event loop.
 */
import { parentPort } from 'node:worker_threads';
import { screenSnapshot } from './snapshot.js';
import type { SnapshotReply, SnapshotRequest } from './snapshot-pool.js';

const port = parentPort;
if (!port) throw new Error('snapshot-worker runs as a worker thread only');

port.on('message', (request: SnapshotRequest) => {
  screenSnapshot([{ off: 0, data: request.data }], request.cols, request.rows).then(
    (data) => {
      const reply: SnapshotReply = { id: request.id, data };
      port.postMessage(reply, [data.buffer as ArrayBuffer]);
    },
    (err: unknown) => {
      const reply: SnapshotReply = { id: request.id, error: err instanceof Error ? err.message : String(err) };
      port.postMessage(reply);
    },
  );
});
