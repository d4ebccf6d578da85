/**
 * `switchboard bench <scenario>`: the bench lives in bench/ (see bench/main.ts), compiled
 * by `npm run build` into dist/bench/; this entry only loads it, so the server's own
 * build carries none of the bench.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Two levels up from both src/cli/bench.ts and dist/cli/bench.js: the repo root. */
const BENCH_JS = fileURLToPath(new URL('../../dist/bench/main.js', import.meta.url));

export async function run(argv: string[]): Promise<number> {
  if (!existsSync(BENCH_JS)) {
    process.stderr.write(`switchboard bench: ${BENCH_JS} is missing; run \`npm run build\` first\n`);
    return 2;
  }
  const bench = (await import(pathToFileURL(BENCH_JS).href)) as { run(argv: string[]): Promise<number> };
  return bench.run(argv);
}
