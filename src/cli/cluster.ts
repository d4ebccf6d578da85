/**
 * `switchboard cluster [--nodes N]`: Redis, PostgreSQL, N nodes and HAProxy on loopback,
 * until Ctrl-C. Prints the HAProxy URL (with the token) and each node's URL.
 */
import { parseArgs } from 'node:util';
import { MissingBinaryError, resolveBinaries, startLocalCluster, type ClusterRole, type LocalCluster } from '../launcher/local-cluster.js';

const USAGE = `Usage: switchboard cluster [options]

  --nodes N          nodes to start (default 3)
  --roles R,R,…      role of each node: edge, host or both (default both)
  --no-postgres      skip PostgreSQL (the distributed wiring may require it)
  --no-haproxy       skip HAProxy
  --token TOKEN      shared admin token (default $SWITCHBOARD_TOKEN or random)
  --verbose          print the nodes' log lines

Every other SWITCHBOARD_* variable in the environment is passed to the nodes.
It needs redis-server, PostgreSQL 15 (initdb, pg_ctl) and haproxy, found on PATH (and
/usr/sbin); REDIS_SERVER, PG_BIN (a directory) and HAPROXY override where.
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string', default: '3' },
        roles: { type: 'string' },
        'no-postgres': { type: 'boolean', default: false },
        'no-haproxy': { type: 'boolean', default: false },
        token: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`switchboard cluster: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) {
    process.stderr.write('switchboard cluster: --nodes must be 1-64\n');
    return 2;
  }
  const roles = values.roles?.split(',').map((r) => r.trim()) as ClusterRole[] | undefined;
  if (roles?.some((r) => !['edge', 'host', 'both'].includes(r))) {
    process.stderr.write('switchboard cluster: --roles takes edge, host or both, comma-separated\n');
    return 2;
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('SWITCHBOARD_') && v !== undefined && k !== 'SWITCHBOARD_TOKEN') env[k] = v;
  }
  const token = values.token ?? process.env.SWITCHBOARD_TOKEN;
  // Ctrl-C or SIGTERM at any moment, during the start too, stops everything started.
  const abort = new AbortController();
  let stopRequested: () => void = () => {};
  const stopping = new Promise<void>((resolve) => (stopRequested = resolve));
  const onSignal = (): void => {
    abort.abort(new Error('interrupted'));
    stopRequested();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // Every program first: a missing one is reported before anything starts.
    try {
      resolveBinaries({ redis: true, postgres: !values['no-postgres'], haproxy: !values['no-haproxy'] });
    } catch (err) {
      process.stderr.write(`switchboard cluster: ${(err as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`starting Redis${values['no-postgres'] ? '' : ', PostgreSQL'}, ${nodes} node(s)${values['no-haproxy'] ? '' : ' and HAProxy'}…\n`);
    let cluster: LocalCluster;
    try {
      cluster = await startLocalCluster({
        nodes,
        ...(roles ? { roles } : {}),
        redis: true,
        postgres: !values['no-postgres'],
        haproxy: !values['no-haproxy'],
        env,
        signal: abort.signal,
        ...(token ? { token } : {}),
        ...(values.verbose ? { onLog: (id: string, line: string) => process.stderr.write(`[${id}] ${line}\n`) } : {}),
      });
    } catch (err) {
      if (abort.signal.aborted) {
        process.stderr.write('interrupted; everything started was stopped\n');
        return 130;
      }
      const started = err instanceof MissingBinaryError ? '' : '\n(everything it had started was stopped)';
      process.stderr.write(`switchboard cluster: ${(err as Error).message}${started}\n`);
      return 1;
    }
    const lines = [`Switchboard local cluster (${nodes} node${nodes === 1 ? '' : 's'}; Ctrl-C stops everything)`];
    if (cluster.haproxyUrl) lines.push(`HAProxy  ${cluster.haproxyUrl}/?token=${cluster.token}`);
    for (const n of cluster.nodes) lines.push(`${n.id.padEnd(8)} ${n.http}/?token=${cluster.token}  (${n.role}, pid ${n.pid})`);
    if (cluster.redisUrl) lines.push(`Redis    ${cluster.redisUrl}`);
    if (cluster.databaseUrl) lines.push(`Postgres ${cluster.databaseUrl}`);
    lines.push(`Token    ${cluster.token}`);
    process.stdout.write(lines.join('\n') + '\n');

    for (const n of cluster.nodes) {
      n.proc.on('exit', (code, signal) => {
        process.stderr.write(`${n.id} exited (${signal ?? code})\n`);
      });
    }
    await stopping;
    process.stderr.write('stopping…\n');
    await cluster.stop();
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
