/**
 * The page's files: served from memory, compressed by Accept-Encoding, revalidated with
 * ETags, and with bounded memory under a client that pipelines requests and never reads.
 */
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { spawnNode } from './helpers/processes.js';
import { rawRequest } from './helpers/http.js';
import { startNode, type TestNode } from './helpers/node.js';

const MiB = 1024 * 1024;

let server: TestNode;
t.before(async () => {
  server = await startNode();
});
t.teardown(() => server.stop());

const onDisk = (name: string): Buffer => readFileSync(new URL(`../dist/web/${name}`, import.meta.url));

t.test('Accept-Encoding picks brotli, gzip or identity; the bytes are the file', async (t) => {
  const file = onDisk('terminal.js');
  const identity = await rawRequest(server.port, { path: '/terminal.js' });
  t.equal(identity.status, 200);
  t.equal(identity.headers['content-encoding'], undefined);
  t.ok(identity.body.equals(file), 'identity: the file as built');
  t.match(identity.headers['content-type'], /^text\/javascript/);
  t.equal(identity.headers['cache-control'], 'no-cache');
  t.equal(identity.headers.vary, 'Accept-Encoding');

  const br = await rawRequest(server.port, { path: '/terminal.js', headers: { 'accept-encoding': 'gzip, deflate, br' } });
  t.equal(br.headers['content-encoding'], 'br');
  t.ok(br.body.length < file.length / 2, `brotli: ${br.body.length} of ${file.length} bytes`);
  t.ok(brotliDecompressSync(br.body).equals(file), 'brotli decodes to the file');

  const gz = await rawRequest(server.port, { path: '/terminal.js', headers: { 'accept-encoding': 'gzip, br;q=0' } });
  t.equal(gz.headers['content-encoding'], 'gzip', 'br;q=0 is not acceptable');
  t.ok(gunzipSync(gz.body).equals(file), 'gzip decodes to the file');

  const tags = new Set([identity.headers.etag, br.headers.etag, gz.headers.etag]);
  t.equal(tags.size, 3, 'one strong ETag per encoding');

  const page = await rawRequest(server.port, { path: '/', headers: { 'accept-encoding': 'br' } });
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  const html = page.headers['content-encoding'] === 'br' ? brotliDecompressSync(page.body) : page.body;
  t.ok(html.equals(onDisk('index.html')), 'the page');
  const css = await rawRequest(server.port, { path: '/xterm.css' });
  t.ok(css.body.equals(onDisk('xterm.css')), 'the stylesheet');
});

t.test('a matching If-None-Match gets 304 without a body', async (t) => {
  const first = await rawRequest(server.port, { path: '/terminal.js', headers: { 'accept-encoding': 'br' } });
  const etag = first.headers.etag as string;
  t.match(etag, /^"[A-Za-z0-9_-]+-br"$/);
  const again = await rawRequest(server.port, { path: '/terminal.js', headers: { 'accept-encoding': 'br', 'if-none-match': etag } });
  t.equal(again.status, 304);
  t.equal(again.body.length, 0);
  t.equal(again.headers.etag, etag);
  const weak = await rawRequest(server.port, { path: '/terminal.js', headers: { 'accept-encoding': 'br', 'if-none-match': `"other", W/${etag}` } });
  t.equal(weak.status, 304, 'weak comparison, any tag in the list');
  const stale = await rawRequest(server.port, { path: '/terminal.js', headers: { 'if-none-match': '"not-this-one"' } });
  t.equal(stale.status, 200, 'a stale tag gets the file');
});

function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!kb) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

t.test('pipelined requests from a client that never reads keep memory bounded', async (t) => {
  const node = await spawnNode('pipeline', {});
  t.teardown(() => node.stop());
  const pid = node.proc.pid!;
  // Warm up: one of each request, so lazily built things are built before the baseline.
  await rawRequest(node.port, { path: '/terminal.js' });
  const before = vm(pid, 'VmRSS');

  // 20 connections x 200 pipelined requests for the largest file, uncompressed, each
  // socket paused: the server's writes back up at once. Answering them all would take
  // 20 x 200 x 383 KB = 1.5 GB.
  const requests = 'GET /terminal.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(200);
  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < 20; i++) {
    const s = connect(node.port, '127.0.0.1');
    s.on('error', () => {});
    s.pause();
    sockets.push(s);
    await once(s, 'connect');
    await new Promise<void>((resolve, reject) => s.write(requests, (err) => (err ? reject(err) : resolve())));
  }
  // The requests are in the server's socket buffers before this connection exists, so
  // by the time it is answered the server has read (and answered or refused) them all.
  t.equal((await rawRequest(node.port, { path: '/healthz' })).status, 200, 'the server still serves');

  // VmHWM is the peak: it also catches memory that was queued and already freed again.
  const peak = vm(pid, 'VmHWM');
  const growth = peak - before;
  t.ok(growth < 100 * MiB, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB (from ${(before / MiB).toFixed(1)} MiB)`);
});

t.test('a request pipelined behind a response still waiting for its reader closes the connection', async (t) => {
  const s = connect(server.port, '127.0.0.1');
  t.teardown(() => s.destroy());
  s.pause();
  await once(s, 'connect');
  const n = 200; // 75 MB of answers: more than any socket buffer holds
  await new Promise<void>((resolve, reject) => s.write('GET /terminal.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(n), (err) => (err ? reject(err) : resolve())));
  // As above: once this is answered, the server has seen all n requests.
  t.equal((await rawRequest(server.port, { path: '/healthz' })).status, 200);
  const received: Buffer[] = [];
  s.on('data', (d: Buffer) => received.push(d));
  s.resume();
  await once(s, 'close');
  const text = Buffer.concat(received).toString('latin1');
  const responses = text.split('HTTP/1.1 200 OK\r\n').length - 1;
  t.ok(responses < n, `${responses} of ${n} responses sent before the server closed the connection`);
});
