#!/usr/bin/env node
/**
 * `switchboard <command>`: serve (default), attach, ls, top, cluster, bench, keeper.
 */
import { settingNames } from '../config/config.js';

const HELP = `switchboard: a real-time WebSocket session gateway

Usage:
  switchboard serve [options]      run a node (npm start)
  switchboard attach [sid]         attach this terminal to a session (a new one without sid)
  switchboard ls                   list sessions
  switchboard top                  the cluster live: nodes and sessions (--once, --json)
  switchboard cluster [--nodes N]  run Redis, PostgreSQL, N nodes and HAProxy locally
  switchboard bench <scenario>     measure latency and capacity
  switchboard keeper [options]     hold a node's terminals so they outlive it (keeper --help)

serve options (each also an environment variable):
${settingNames().map((s) => `  ${s.flag.padEnd(28)} ${s.env}`).join('\n')}

attach/ls/top options: --url URL (default http://127.0.0.1:7070), --token TOKEN (default $SWITCHBOARD_TOKEN)
`;

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case 'attach':
    case 'ls':
    case 'top':
    case 'cluster':
    case 'bench':
    case 'keeper': {
      const mod = (await import(`./${command}.js`)) as { run(argv: string[]): Promise<number> };
      process.exitCode = await mod.run(rest);
      return;
    }
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      if (command.startsWith('--')) return (await import('./serve.js')).serve(argv);
      process.stderr.write(`switchboard: unknown command '${command}'\n\n${HELP}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`switchboard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
