/**
 * `switchboard keeper`: the process that holds a node's terminals (src/keeper/keeper.ts).
 * A node starts one itself when none answers (SWITCHBOARD_KEEPER=auto); operators run it
 * on its own (a systemd unit, a container beside the node) with SWITCHBOARD_KEEPER=external.
 */
import { hostname } from 'node:os';
import { answers, Keeper, KeeperRunning } from '../keeper/keeper.js';
import { defaultKeeperSocket } from '../keeper/paths.js';
import { createLogger, type Level } from '../util/log.js';

const HELP = `switchboard keeper: hold a node's terminals so they outlive the node process

Options (each also an environment variable):
  --socket PATH        SWITCHBOARD_KEEPER_SOCKET    default <tmp>/switchboard-<uid>/keeper-<node id>.sock
  --node-id ID         SWITCHBOARD_NODE_ID          names the default socket (default hostname-7070)
  --idle-exit-ms N     exit after N ms with no terminal and no node (default 0: never)
  --orphan-ms N        SWITCHBOARD_KEEPER_ORPHAN_MS end the terminals after N ms with no node (default 0: never)
  --log-level LEVEL    SWITCHBOARD_LOG_LEVEL        debug, info, warn, error
  --check              exit 0 if a keeper answers on the socket, 1 if not (for health
                       checks: a container's startup probe, a compose healthcheck)
`;

interface KeeperArgs {
  socket: string | undefined;
  nodeId: string;
  idleExitMs: number;
  orphanMs: number;
  logLevel: Level;
  /** Only say whether a keeper answers on the socket. */
  check: boolean;
}

export function parseKeeperArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): KeeperArgs {
  const args: KeeperArgs = {
    socket: env.SWITCHBOARD_KEEPER_SOCKET || undefined,
    nodeId: env.SWITCHBOARD_NODE_ID || `${hostname()}-${env.SWITCHBOARD_PORT || '7070'}`,
    idleExitMs: 0,
    orphanMs: Number(env.SWITCHBOARD_KEEPER_ORPHAN_MS || 0),
    logLevel: (env.SWITCHBOARD_LOG_LEVEL as Level | undefined) || 'info',
    check: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--check') {
      args.check = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new Error(`${flag}: needs a value`);
    switch (flag) {
      case '--socket':
        if (!value.startsWith('/')) throw new Error(`--socket: must be an absolute path (got '${value}')`);
        args.socket = value;
        break;
      case '--node-id':
        args.nodeId = value;
        break;
      case '--idle-exit-ms':
      case '--orphan-ms': {
        if (!/^\d+$/.test(value)) throw new Error(`${flag}: must be a whole number of milliseconds (got '${value}')`);
        if (flag === '--idle-exit-ms') args.idleExitMs = Number(value);
        else args.orphanMs = Number(value);
        break;
      }
      case '--log-level':
        if (!['debug', 'info', 'warn', 'error'].includes(value)) throw new Error(`--log-level: must be debug, info, warn or error (got '${value}')`);
        args.logLevel = value as Level;
        break;
      default:
        throw new Error(`${flag}: unknown option\n\n${HELP}`);
    }
  }
  return args;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let args: KeeperArgs;
  try {
    args = parseKeeperArgs(argv);
  } catch (err) {
    process.stderr.write(`switchboard keeper: ${(err as Error).message}\n`);
    return 2;
  }
  const socketPath = args.socket ?? defaultKeeperSocket(args.nodeId);
  if (args.check) {
    // Connects and closes without a hello: the keeper drops such a connection silently.
    if (await answers(socketPath)) return 0;
    process.stderr.write(`switchboard keeper: no keeper answers on ${socketPath}\n`);
    return 1;
  }
  process.title = `switchboard-keeper ${args.nodeId}`;
  const logger = createLogger(args.logLevel, 'switchboard:keeper');
  const keeper = new Keeper({ socketPath, idleExitMs: args.idleExitMs, orphanMs: args.orphanMs, logger });
  // The terminals matter more than any one bug: a stray exception is logged, not fatal.
  process.on('uncaughtException', (err) => logger.error('uncaught exception', { err: String(err), stack: err.stack }));
  process.on('unhandledRejection', (err) => logger.error('unhandled rejection', { err: String(err) }));
  // A node's terminal (its process group) may send SIGHUP on close; the keeper is not theirs.
  process.on('SIGHUP', () => {});
  try {
    await keeper.start();
  } catch (err) {
    if (err instanceof KeeperRunning) {
      logger.info('another keeper serves this socket; exiting', { socket: socketPath, pid: err.pid });
      return 0;
    }
    logger.error('keeper failed to start', { socket: socketPath, err: String(err) });
    return 1;
  }
  const stop = (): void => {
    void keeper.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await new Promise<void>((resolve) => {
    keeper.onStopped = resolve;
  });
  return 0;
}
