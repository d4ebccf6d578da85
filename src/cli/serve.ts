import { loadConfig, isLoopback, type Config } from '../config/config.js';
import { ConfigError } from '../errors/errors.js';
import { createLogger } from '../util/log.js';
import { createSeams } from '../node/wiring.js';
import { SwitchboardNode } from '../node/node.js';

/** Starts a node and runs until SIGINT/SIGTERM (SIGTERM drains first). */
export async function serve(argv: string[]): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const seams = await createSeams(config, logger);
  const node = new SwitchboardNode(config, seams, logger);
  let port: number;
  try {
    port = await node.start();
  } catch (err) {
    process.stderr.write(`switchboard: ${(err as Error).message}\n`);
    await node.shutdown(0).catch(() => {});
    process.exit(1);
  }
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const base = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  const mode = config.redisUrls.length === 0 && !config.databaseUrl ? 'embedded (memory; single node)' : 'distributed';
  const lines = [`Switchboard ${mode} node ${config.nodeId} listening on ${config.host}:${port}`];
  if (config.auth === 'none') lines.push(`Open ${base}/  (authentication is OFF)`, `Dashboard ${base}/dashboard`);
  else {
    lines.push(`Open ${base}/?token=${config.token}`);
    lines.push(`Dashboard ${base}/dashboard#token=${config.token}`);
    if (config.tokenGenerated) lines.push('(a random token: set SWITCHBOARD_TOKEN to keep it across restarts)');
  }
  if (node.server.metricsPort !== undefined) {
    const h = config.metricsHost.includes(':') ? `[${config.metricsHost}]` : config.metricsHost;
    lines.push(`Metrics on http://${h}:${node.server.metricsPort}/metrics`);
  }
  if (!isLoopback(config.host)) lines.push(`Listening on a non-loopback address: anyone who can reach ${config.host} needs the token.`);
  process.stdout.write(lines.join('\n') + '\n');

  let signals = 0;
  const exit = (code: number): void => {
    process.exit(code);
  };
  node.onStopped = () => exit(0);
  process.on('SIGTERM', () => {
    if (++signals > 1) exit(1);
    void node.drain().then(() => exit(0));
  });
  process.on('SIGINT', () => {
    if (++signals > 1) exit(130);
    void node.shutdown(2_000).then(() => exit(0));
  });
}
