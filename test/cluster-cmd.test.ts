/**
 * `switchboard cluster --nodes 2`: Redis, PostgreSQL, two nodes and HAProxy come up; the
 * registry seen through HAProxy (round-robin, so either node answers) lists both nodes;
 * Ctrl-C stops every process it started.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const TOKEN = 'cluster-cmd-test-token';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('cluster --nodes 2 serves /v1/nodes with both nodes through HAProxy', async (t) => {
  const proc = spawn(process.execPath, [MAIN, 'cluster', '--nodes', '2', '--token', TOKEN], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster did not start in 60 s:\n${out}\n${err}`)), 60_000);
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('Token')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cluster exited ${code}:\n${out}\n${err}`));
    });
  });
  const haproxy = /HAProxy\s+(http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)/.exec(out);
  t.ok(haproxy, 'prints the HAProxy URL with the token');
  t.equal(haproxy![2], TOKEN);
  const nodeLines = [...out.matchAll(/^(node-\d)\s+(http:\/\/127\.0\.0\.1:\d+)\/\?token=\S+\s+\(both, pid (\d+)\)/gm)];
  t.equal(nodeLines.length, 2, 'prints each node URL');

  // Several requests: round-robin sends them to both nodes, and each must see both.
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${haproxy![1]}/v1/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } });
    t.equal(res.status, 200);
    const body = (await res.json()) as { nodes: Array<{ id: string }> };
    t.same(body.nodes.map((n) => n.id).sort(), ['node-1', 'node-2'], `request ${i + 1} lists both nodes`);
  }
  // Each node answers directly too.
  for (const [, id, url] of nodeLines) {
    const res = await fetch(`${url}/readyz`);
    t.equal(res.status, 200, `${id} is ready`);
  }

  proc.kill('SIGINT');
  const [code] = await exited;
  t.equal(code, 0, 'Ctrl-C exits 0');
  for (const [, id, , pid] of nodeLines) t.notOk(alive(Number(pid)), `${id} stopped`);
});
