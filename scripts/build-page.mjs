// Bundles the browser pages (src/web: the terminal, the operators' dashboard) into dist/web with esbuild.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
mkdirSync(out, { recursive: true });
const entry = join(root, 'src', 'web', 'terminal.ts');
if (existsSync(entry)) {
  await build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    outfile: join(out, 'terminal.js'),
    loader: { '.css': 'css' },
    logLevel: 'warning',
  });
  cpSync(join(root, 'node_modules', '@xterm', 'xterm', 'css', 'xterm.css'), join(out, 'xterm.css'));
  cpSync(join(root, 'src', 'web', 'index.html'), join(out, 'index.html'));
}

// The operators' dashboard (/dashboard): its own bundle, no xterm.
const dashboard = join(root, 'src', 'web', 'dashboard.ts');
if (existsSync(dashboard)) {
  await build({
    entryPoints: [dashboard],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    outfile: join(out, 'dashboard.js'),
    logLevel: 'warning',
  });
  cpSync(join(root, 'src', 'web', 'dashboard.html'), join(out, 'dashboard.html'));
}
