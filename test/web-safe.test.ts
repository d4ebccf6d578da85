/**
 * The browser page shares the protocol client (src/client/core.ts, link.ts, retry.ts)
 * and the codec with Node. Two checks that they stay browser-safe: the page's code
 * typechecks with the DOM library and without Node's types (a Buffer or process would
 * fail here, not in a user's tab), and esbuild bundles it for the browser (a `node:`
 * import or the `ws` package would fail to resolve).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

t.test('the page and the client core typecheck as browser code', async (t) => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const result = await run(process.execPath, [tsc, '-p', 'src/web/tsconfig.json'], { cwd: ROOT }).catch((err: { stdout?: string; stderr?: string }) => err);
  t.equal(`${result.stdout ?? ''}${result.stderr ?? ''}`.trim(), '', 'tsc -p src/web/tsconfig.json reports nothing');
});

t.test('the client core bundles for the browser with nothing from Node', async (t) => {
  const out = await build({
    entryPoints: ['src/client/link.ts', 'src/client/core.ts', 'src/protocol/codec.ts'],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    outdir: 'out',
    logLevel: 'silent',
    metafile: true,
  });
  const inputs = Object.keys(out.metafile.inputs);
  t.same(inputs.filter((i) => /^node:|node_modules\/ws\//.test(i)), [], 'no Node built-ins, no ws');
  t.ok(inputs.some((i) => i.includes('msgpackr')), 'msgpackr is bundled (its browser build)');
});
