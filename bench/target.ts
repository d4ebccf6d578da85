/**
 * What a bench run drives: a private local cluster it starts (src/launcher), or running
 * nodes given by `--url`. Also how the processes under test are read afterwards.
 */
import { execFile } from 'node:child_process';
import { startLocalCluster, type ClusterRole, type LocalCluster } from '../src/launcher/local-cluster.js';
import type { Options } from './options.js';
import { rssBytes, type CpuWindow, type WatchedProc } from './proc-stats.js';
import type { NodeStat } from './result.js';
import { round } from './units.js';

export interface Target {
  /** ws URLs of the nodes clients connect to. */
  edges: string[];
  token: string;
  /** Processes to read CPU and RSS of (local only). */
  procs: WatchedProc[];
  /** http base for /v1/nodes. */
  http: string;
  cluster?: LocalCluster;
  redisUrl?: string;
  databaseUrl?: string;
  stop(): Promise<void>;
}

/** The nodes must not limit the load generator. */
const NODE_FLAGS = ['--connect-rate', '10000000', '--frame-rate', '10000000', '--capacity', '1000000', '--connection-bytes-rate', '1GiB', '--connection-bytes-burst', '1GiB'];
/** Settings the private cluster sets itself, or that are the bench's own. */
const NOT_PASSED = ['SWITCHBOARD_TOKEN', 'SWITCHBOARD_REDIS_URL', 'SWITCHBOARD_DATABASE_URL', 'SWITCHBOARD_BENCH_VERBOSE', 'SWITCHBOARD_LOG_LEVEL', 'SWITCHBOARD_BENCH_NODE_ARGS'];

function urlTarget(o: Options): Target {
  const edges = o.urls.map((u) => {
    const url = new URL(u);
    url.protocol = url.protocol.replace(/^http/, 'ws');
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/ws';
    url.search = '';
    return url.toString();
  });
  const http = new URL(edges[0]!);
  http.protocol = http.protocol.replace(/^ws/, 'http');
  http.pathname = '';
  return { edges, token: o.token, procs: [], http: http.origin, stop: async () => {} };
}

/**
 * Writes what the start-up left in the page cache (a fresh PostgreSQL cluster is ~70 MB)
 * to disk now. Left alone, the kernel writes it back ~30 s later, inside the measured
 * window of whichever system started last, and not in the other's: measured, 67-86 MB
 * dirty from the start until a writeback 32 s in.
 */
export function settleDisk(): Promise<void> {
  return new Promise((resolve) => {
    execFile('sync', () => resolve());
  });
}

export async function startTarget(o: Options, log: (s: string) => void): Promise<Target> {
  if (o.urls.length > 0) return urlTarget(o);
  const verbose = process.env.SWITCHBOARD_BENCH_VERBOSE !== undefined;
  const roles: ClusterRole[] = o.single ? ['both'] : [...Array(o.hosts).fill('host'), ...Array(o.edges).fill('edge')];
  log(o.single ? 'starting one embedded node…' : `starting Redis, PostgreSQL, ${o.hosts} host and ${o.edges} edge node(s)…`);
  const cluster = await startLocalCluster({
    nodes: roles.length, roles, redis: !o.single, postgres: !o.single, haproxy: false, flags: NODE_FLAGS, idPrefix: 'bench',
    // The caller's SWITCHBOARD_* settings (e.g. SWITCHBOARD_LEASE_TTL_MS) reach the nodes; the
    // cluster's own token, Redis and database URLs still win.
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] =>
      e[0].startsWith('SWITCHBOARD_') && e[1] !== undefined && (!NOT_PASSED.includes(e[0]) || (verbose && e[0] === 'SWITCHBOARD_LOG_LEVEL')))),
    // SWITCHBOARD_BENCH_VERBOSE=1 shows the nodes' warnings and errors (with
    // SWITCHBOARD_LOG_LEVEL=info, their info lines too).
    ...(process.env.SWITCHBOARD_BENCH_VERBOSE ? { onLog: (id: string, line: string) => log(`${id}: ${line}`) } : {}),
    // SWITCHBOARD_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=prof' profiles every node.
    ...(process.env.SWITCHBOARD_BENCH_NODE_ARGS ? { nodeArgs: process.env.SWITCHBOARD_BENCH_NODE_ARGS.split(/\s+/).filter(Boolean) } : {}),
  });
  await settleDisk();
  const procs: WatchedProc[] = cluster.nodes.map((n) => ({ id: n.id, role: n.role, pid: n.pid }));
  if (cluster.redisPid) procs.push({ id: 'redis', role: 'redis', pid: cluster.redisPid });
  if (cluster.postgresPid) procs.push({ id: 'postgres', role: 'postgres', pid: cluster.postgresPid, tree: true });
  return {
    edges: cluster.nodes.filter((n) => n.role !== 'host').map((n) => n.ws),
    token: cluster.token, procs, http: cluster.nodes[0]!.http, cluster,
    ...(cluster.redisUrl ? { redisUrl: cluster.redisUrl } : {}),
    ...(cluster.databaseUrl ? { databaseUrl: cluster.databaseUrl } : {}),
    stop: () => cluster.stop(),
  };
}

/**
 * RSS now and, given a CPU window, cores used over it and CPU µs per keystroke echoed in
 * it. For `--url` targets the nodes' own /v1/nodes figures (no per-keystroke CPU).
 */
export async function nodeStats(target: Target, window?: CpuWindow, keystrokes = 0): Promise<NodeStat[]> {
  if (target.procs.length > 0) {
    return Promise.all(target.procs.map(async (p) => {
      const cpu = window?.cpu(p.pid);
      const wall = window?.wallSeconds ?? 0;
      return {
        id: p.id, role: p.role, rssBytes: (await rssBytes(p)) ?? 0,
        cpu: cpu !== undefined && wall > 0 ? round(cpu / wall, 3) : null,
        usPerKeystroke: cpu !== undefined && keystrokes > 0 ? round((cpu * 1e6) / keystrokes, 1) : null,
      };
    }));
  }
  try {
    const res = await fetch(`${target.http}/v1/nodes`, { headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { nodes: Array<{ id: string; role: string; rss: number; cpu: number }> };
    return body.nodes.map((n) => ({ id: n.id, role: n.role, rssBytes: n.rss, cpu: n.cpu, usPerKeystroke: null }));
  } catch {
    return [];
  }
}
