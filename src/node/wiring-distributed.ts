import type { Config } from '../config/config.js';
import type { Logger } from '../util/log.js';
import type { Seams } from './wiring.js';

export async function distributedSeams(_config: Config, _logger: Logger): Promise<Seams> {
  throw new Error('Redis/PostgreSQL seams are not wired yet');
}
