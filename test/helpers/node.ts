/**
 * Starts a real node in this process on a free port (memory seams unless given), with
 * real uWS, real backends, real sockets.
 */
import { loadConfig, type Config } from '../../src/config/config.js';
import { SwitchboardNode } from '../../src/node/node.js';
import { memorySeams, type Seams } from '../../src/node/wiring.js';
import { createLogger } from '../../src/util/log.js';
import { uniqueKeeperSocket } from './keeper.js';

export const TEST_TOKEN = 'test-token-0123456789';

export interface TestNode {
  node: SwitchboardNode;
  config: Config;
  port: number;
  url: string;
  http: string;
  stop(): Promise<void>;
}

export async function startNode(flags: string[] = [], seams?: (config: Config) => Seams): Promise<TestNode> {
  // In-process nodes share one default node id: each gets a keeper of its own.
  const keeper = flags.some((f) => f.startsWith('--keeper-socket')) ? [] : ['--keeper-socket', uniqueKeeperSocket()];
  const config = loadConfig(['--port', '0', '--token', TEST_TOKEN, '--log-level', 'error', ...keeper, ...flags], {});
  const node = new SwitchboardNode(config, seams ? seams(config) : memorySeams(config), createLogger('error'));
  const port = await node.start();
  return {
    node, config, port,
    url: `ws://127.0.0.1:${port}/v1/ws`,
    http: `http://127.0.0.1:${port}`,
    stop: () => node.shutdown(500),
  };
}
