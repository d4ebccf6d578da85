/**
 * The deployment files, read as their tools would read them:
 * - the Dockerfile's build stage copies every file and directory `npm run build` needs
 *   (from package.json's build script, the tsconfigs it compiles, what their sources
 *   import, and what the page build script reads), before `npm ci` runs it; the image
 *   runs any subcommand (`serve`, `keeper`) under an init;
 * - compose runs an edge pool behind HAProxy and hosts that each share a volume with a
 *   keeper service, keeps Redis (append-only) and PostgreSQL on volumes, gives a drain time;
 * - the Kubernetes manifests parse: an edge Deployment behind the Service and a host
 *   Deployment whose pods run the keeper as a container of their own, sharing its socket
 *   through an emptyDir; probes on real open routes (a real node answers them), grace
 *   periods longer than the drain, the keeper outliving the node's drain, disruption
 *   budgets, autoscalers aimed at Deployments that exist, non-root security contexts,
 *   resource requests, and the Redis and PostgreSQL the nodes are pointed at.
 * Every variable they set is a real setting, and each container's settings parse.
 */
import t, { type Test } from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig, settingNames } from '../src/config/config.js';
import { parseKeeperArgs } from '../src/cli/keeper.js';
import { startNode } from './helpers/node.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SETTINGS = new Set(settingNames().map((s) => s.env));
/** Produced inside the image, never copied in. */
const GENERATED = new Set(['node_modules', 'dist']);

// ─── what the build reads ─────────────────────────────────────────────────────

function topLevel(file: string): string | undefined {
  const rel = relative(ROOT, file);
  if (rel.startsWith('..') || rel === '') return undefined;
  return rel.split(sep)[0];
}

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const file = join(dir, name);
    if (statSync(file).isDirectory()) walk(file, out);
    else out.push(file);
  }
  return out;
}

/** Files a tsconfig compiles: its include patterns, as directories walked for .ts. */
function tsconfigSources(file: string): { extendsChain: string[]; sources: string[] } {
  const config = JSON.parse(readFileSync(file, 'utf8')) as { extends?: string; include?: string[]; files?: string[] };
  const dir = dirname(file);
  const chain = [file];
  if (config.extends) chain.push(...tsconfigSources(resolve(dir, config.extends)).extendsChain);
  const includes = config.include ?? (config.extends ? [] : ['**/*']);
  const sources: string[] = [];
  for (const pattern of includes) {
    const base = resolve(dir, pattern.split('/').filter((p) => !p.includes('*')).join('/'));
    if (existsSync(base)) sources.push(...walk(base).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')));
  }
  for (const f of config.files ?? []) sources.push(resolve(dir, f));
  return { extendsChain: chain, sources };
}

/** Top-level paths of the repo that `npm run build` reads. */
export function buildInputs(): { needed: Set<string>; why: Map<string, string> } {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const needed = new Set<string>(['package.json', 'package-lock.json']);
  const why = new Map<string, string>([['package.json', 'npm ci'], ['package-lock.json', 'npm ci']]);
  const need = (path: string | undefined, reason: string): void => {
    if (path === undefined || GENERATED.has(path) || needed.has(path)) return;
    needed.add(path);
    why.set(path, reason);
  };
  for (const step of pkg.scripts.build!.split('&&').map((s) => s.trim())) {
    const tsc = /^tsc\s+-p\s+(\S+)/.exec(step);
    const node = /^node\s+(\S+)/.exec(step);
    if (tsc) {
      const { extendsChain, sources } = tsconfigSources(join(ROOT, tsc[1]!));
      for (const f of extendsChain) need(topLevel(f), `${step} (tsconfig)`);
      for (const src of sources) {
        need(topLevel(src), `${step} compiles ${relative(ROOT, src)}`);
        // Relative imports may reach outside the included folders (bench → src).
        for (const m of readFileSync(src, 'utf8').matchAll(/(?:from\s+|import\s*\()\s*'(\.{1,2}\/[^']+)'/g)) {
          need(topLevel(normalize(resolve(dirname(src), m[1]!))), `${relative(ROOT, src)} imports ${m[1]}`);
        }
      }
    } else if (node) {
      const script = join(ROOT, node[1]!);
      need(topLevel(script), step);
      for (const m of readFileSync(script, 'utf8').matchAll(/join\(\s*root\s*,\s*'([^']+)'/g)) need(m[1], `${node[1]} reads ${m[1]}/`);
    } else {
      throw new Error(`deploy-files test: no rule for the build step "${step}"; teach buildInputs() what it reads`);
    }
  }
  return { needed, why };
}

// ─── what the Dockerfile copies ───────────────────────────────────────────────

interface Stage { from: string; lines: string[] }

export function dockerStages(text: string): Stage[] {
  // Continuation lines joined; comments dropped.
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    if (/^FROM\s/i.test(line)) stages.push({ from: line, lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** Sources of COPY instructions from the build context (not --from=another stage). */
function copiedPaths(stage: Stage): string[] {
  const paths: string[] = [];
  for (const line of stage.lines) {
    const m = /^COPY\s+(.*)$/i.exec(line);
    if (!m) continue;
    const args = m[1]!.split(/\s+/);
    if (args.some((a) => a.startsWith('--from'))) continue;
    const plain = args.filter((a) => !a.startsWith('--'));
    for (const src of plain.slice(0, -1)) paths.push(src.replace(/^\.\//, '').replace(/\/$/, ''));
  }
  return paths;
}

/** What the build stage fails to copy before `npm ci` (which builds). */
export function missingFromBuildStage(dockerfile: string, needed: Set<string>): string[] {
  const stage = dockerStages(dockerfile)[0]!;
  const ci = stage.lines.findIndex((l) => /^RUN\b.*\bnpm ci\b/.test(l));
  if (ci === -1) return ['(no RUN npm ci in the build stage)'];
  const copied = copiedPaths({ ...stage, lines: stage.lines.slice(0, ci) });
  return [...needed].filter((p) => !copied.some((c) => c === '.' || c === p || p.startsWith(`${c}/`))).sort();
}

const DOCKERFILE = readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8');

t.test('the Dockerfile copies everything the build reads', async (t) => {
  const { needed, why } = buildInputs();
  for (const p of ['src', 'bench', 'scripts', 'tsconfig.json', 'tsconfig.build.json']) t.ok(needed.has(p), `the build needs ${p} (${why.get(p)})`);
  t.same(missingFromBuildStage(DOCKERFILE, needed), [], 'every input is copied before npm ci');
  // The check catches the bug it was written for: bench/ not copied.
  const withoutBench = DOCKERFILE.replace(/^COPY bench .*$/m, '');
  t.same(missingFromBuildStage(withoutBench, needed), ['bench'], 'a Dockerfile without COPY bench fails the check');
  t.same(missingFromBuildStage(DOCKERFILE.replace(/^RUN npm ci.*$/m, ''), needed), ['(no RUN npm ci in the build stage)']);

  const stages = dockerStages(DOCKERFILE);
  t.equal(stages.length, 2, 'a build stage and a runtime stage');
  const runtime = stages[1]!;
  const user = runtime.lines.filter((l) => /^USER\s/i.test(l)).at(-1);
  t.ok(user && !/^USER\s+(root|0)(:|$)/i.test(user), `the runtime runs as a non-root user (${user})`);
  for (const p of ['dist', 'node_modules', 'migrations']) t.ok(runtime.lines.some((l) => l.startsWith('COPY --from=build') && l.includes(`/app/${p}`)), `the runtime gets ${p}`);
  t.ok(runtime.lines.some((l) => /^STOPSIGNAL SIGTERM$/.test(l)), 'SIGTERM (a drain) stops it');
  t.ok(existsSync(join(ROOT, 'docker', 'Dockerfile.dockerignore')), 'the build context leaves node_modules out');
});

// ─── the commands, routes and settings the files name ────────────────────────

/** Subcommands the CLI dispatches (src/cli/main.ts's switch). */
const COMMANDS = new Set([...readFileSync(join(ROOT, 'src', 'cli', 'main.ts'), 'utf8').matchAll(/case '([a-z]+)':/g)].map((m) => m[1]!));
/** GET routes the main listener serves without a credential: the probes' candidates. */
const OPEN_ROUTES = ['/healthz', '/readyz'];
const KEEPER_SOCKET_DIR = '/run/switchboard';

t.test('the image runs any subcommand, as a non-root user, under an init', async (t) => {
  const runtime = dockerStages(DOCKERFILE)[1]!;
  const json = (instr: string): string[] => JSON.parse(runtime.lines.find((l) => l.startsWith(`${instr} `))!.slice(instr.length + 1)) as string[];
  const entrypoint = json('ENTRYPOINT');
  t.same(entrypoint.slice(-2), ['node', 'dist/cli/main.js'], 'the entrypoint is the CLI, with no subcommand fixed');
  t.equal(entrypoint[0], 'tini', 'tini is PID 1: it forwards SIGTERM and reaps what shells leave behind');
  t.ok(runtime.lines.some((l) => /apt-get install .*\btini\b/.test(l)), 'and is installed');
  t.same(json('CMD'), ['serve'], '`serve` unless told otherwise (`keeper` for a keeper container)');
  t.ok(COMMANDS.has('serve') && COMMANDS.has('keeper'));
  t.ok(runtime.lines.some((l) => l.startsWith('WORKDIR /app')), 'the CLI is at /app/dist/cli/main.js');
  t.ok(runtime.lines.some((l) => new RegExp(`install -d -o node -g node -m 0700 ${KEEPER_SOCKET_DIR}$`).test(l)), `${KEEPER_SOCKET_DIR} belongs to the server's user (a named volume there starts out so)`);
});

t.test('the probe paths are real routes, open without a token', async (t) => {
  const server = readFileSync(join(ROOT, 'src', 'edge', 'server.ts'), 'utf8');
  for (const path of OPEN_ROUTES) t.ok(server.includes(`this.app.get('${path}'`), `${path} is routed`);
  const edge = await startNode(['--role', 'edge']);
  t.teardown(() => edge.stop());
  for (const path of OPEN_ROUTES) {
    const res = await fetch(`${edge.http}${path}`);
    t.equal(res.status, 200, `GET ${path} without a token: 200`);
  }
});

/**
 * A keeper is started with `command` and `env`, and its node with `nodeEnv`: both must
 * mean the same socket, and the keeper command must be one the CLI takes.
 */
function checkKeeperPair(t: Test, where: string, keeperArgs: string[], keeperEnv: Record<string, string>, nodeEnv: Record<string, string>): void {
  t.equal(keeperArgs[0], 'keeper', `${where}: the keeper runs \`switchboard keeper\``);
  const args = parseKeeperArgs(keeperArgs.slice(1), keeperEnv);
  const node = loadConfig([], { SWITCHBOARD_TOKEN: 'x'.repeat(24), ...nodeEnv });
  t.equal(node.keeper, 'external', `${where}: the node uses the keeper it is given and starts none`);
  t.equal(args.socket, node.keeperSocket, `${where}: keeper and node name the same socket (${node.keeperSocket})`);
  t.equal(dirname(node.keeperSocket), KEEPER_SOCKET_DIR, `${where}: in the shared directory`);
  t.same(Object.keys(keeperEnv).filter((k) => /TOKEN|DATABASE|REDIS|SECRET/.test(k)), [], `${where}: no credentials in the keeper's environment (its shells inherit from it)`);
}

// ─── compose ──────────────────────────────────────────────────────────────────

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`duration ${duration}`);
  return Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1);
}

t.test('compose: an edge pool behind HAProxy, hosts with keeper services, data on volumes', async (t) => {
  const compose = parse(readFileSync(join(ROOT, 'docker', 'compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>; volumes: Record<string, unknown>;
  };
  const { services } = compose;
  const redis = services.redis!;
  t.match(redis.command!.join(' '), /--appendonly yes/, 'Redis writes an append-only file');
  const named = (svc: ComposeService, target: string): string | undefined => svc.volumes?.map((v) => v.split(':')).find(([, to]) => to === target)?.[0];
  t.ok(named(redis, '/data') && named(redis, '/data')! in compose.volumes, 'Redis /data is a named volume');
  t.ok(named(services.postgres!, '/var/lib/postgresql/data')! in compose.volumes, 'PostgreSQL data is a named volume');

  const ours = Object.entries(services).filter(([, s]) => s.build?.dockerfile === 'docker/Dockerfile');
  const keepers = ours.filter(([, s]) => s.command?.[0] === 'keeper');
  const nodes = ours.filter(([, s]) => s.command === undefined || s.command[0] === 'serve');
  t.equal(ours.length, keepers.length + nodes.length, 'every service of ours is a node or a keeper');
  const role = (s: ComposeService): string | undefined => s.environment?.SWITCHBOARD_ROLE;
  const edges = nodes.filter(([, s]) => role(s) === 'edge').map(([n]) => n);
  const hosts = nodes.filter(([, s]) => role(s) === 'host').map(([n]) => n);
  t.ok(edges.length >= 2, `an edge pool: ${edges.join(', ')}`);
  t.ok(hosts.length >= 2, `a host pool: ${hosts.join(', ')}`);
  t.equal(edges.length + hosts.length, nodes.length, 'every node is an edge or a host');

  for (const [name, s] of nodes) {
    const env = s.environment!;
    t.equal(env.SWITCHBOARD_NODE_ID, name, `${name} has its own stable id`);
    const drainS = Number(env.SWITCHBOARD_DRAIN_DEADLINE_MS ?? 30_000) / 1000;
    t.ok(seconds(s.stop_grace_period!) > drainS, `${name}: stop_grace_period ${s.stop_grace_period} > drain deadline ${drainS}s`);
    t.same(Object.keys(env).filter((k) => k.startsWith('SWITCHBOARD_') && !SETTINGS.has(k)), [], `${name}: every SWITCHBOARD_* variable is a setting`);
    t.doesNotThrow(() => loadConfig([], env), `${name}: its settings parse`);
    t.match(s.depends_on, { redis: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' } }, `${name} starts once Redis and PostgreSQL are healthy`);
  }

  // Each host shares a named volume with exactly one keeper service, at the socket's directory.
  const keeperOf = new Map<string, string>();
  for (const host of hosts) {
    const s = services[host]!;
    const volume = named(s, KEEPER_SOCKET_DIR);
    t.ok(volume && volume in compose.volumes, `${host}: a named volume at ${KEEPER_SOCKET_DIR}`);
    const sharing = keepers.filter(([, k]) => named(k, KEEPER_SOCKET_DIR) === volume);
    t.equal(sharing.length, 1, `${host}: one keeper service shares it`);
    if (sharing.length !== 1) continue;
    const [keeperName, keeper] = sharing[0]!;
    keeperOf.set(host, keeperName);
    checkKeeperPair(t, `${host}/${keeperName}`, keeper.command!, keeper.environment ?? {}, s.environment!);
    t.same((s.depends_on as Record<string, { condition: string }>)[keeperName], { condition: 'service_healthy' }, `${host} starts once its keeper answers`);
    t.same(keeper.healthcheck?.test.slice(1), ['node', 'dist/cli/main.js', 'keeper', '--check'], `${keeperName}: healthy when it answers on its socket`);
  }
  t.equal(new Set(keeperOf.values()).size, keepers.length, 'every keeper serves one host');
  for (const [name, k] of keepers) t.same(Object.keys(k.environment ?? {}).filter((e) => !SETTINGS.has(e)), [], `${name}: every variable is a setting`);

  // HAProxy sends clients to the edges, all of them, and to nothing else.
  const haproxy = readFileSync(join(ROOT, 'docker', 'haproxy.cfg'), 'utf8');
  const backends = [...haproxy.matchAll(/^\s*server\s+\S+\s+([^:\s]+):7070\b/gm)].map((m) => m[1]!).sort();
  t.same(backends, [...edges].sort(), 'HAProxy balances over the edges');
  t.match(haproxy, /uri \/readyz/, 'health-checked on /readyz');
  // Prometheus scrapes every node.
  const prometheus = readFileSync(join(ROOT, 'docker', 'prometheus', 'prometheus.yml'), 'utf8');
  for (const [name] of nodes) t.ok(prometheus.includes(`"${name}:9464"`), `Prometheus scrapes ${name}`);

  for (const svc of Object.values(services)) {
    for (const v of svc.volumes ?? []) {
      const from = v.split(':')[0]!;
      if (from.startsWith('.')) t.ok(existsSync(join(ROOT, 'docker', from)), `mounted file ${from} exists`);
    }
  }
});

// ─── Kubernetes ───────────────────────────────────────────────────────────────

type Obj = Record<string, any>;
const K8S = join(ROOT, 'docker', 'k8s');
const manifests: Array<{ file: string; doc: Obj }> = [];
for (const file of readdirSync(K8S).filter((f) => f.endsWith('.yaml'))) {
  for (const d of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const doc = d.toJS() as Obj | null;
    if (doc) manifests.push({ file, doc });
  }
}
const find = (kind: string, name: string): Obj | undefined => manifests.find((m) => m.doc.kind === kind && m.doc.metadata?.name === name)?.doc;
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);
/** Every container of a pod, the init (and sidecar) ones included. */
const containersOf = (pod: Obj): Obj[] => [...(pod.initContainers ?? []), ...pod.containers];

/** A container's environment with ConfigMap values filled in and secrets given stand-ins. */
function envOf(c: Obj, configMaps: Map<string, Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of (c.envFrom ?? []) as Obj[]) Object.assign(env, configMaps.get(from.configMapRef?.name) ?? {});
  for (const e of (c.env ?? []) as Obj[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef) env[e.name] = 'pod-name-0';
    else if (e.valueFrom?.secretKeyRef?.key === 'database-url') env[e.name] = 'postgres://u:p@postgres:5432/db';
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'x'.repeat(24);
  }
  return env;
}

/** The Deployment whose pods run `switchboard serve` with SWITCHBOARD_ROLE=`role`. */
function pool(role: string, configMaps: Map<string, Record<string, string>>): Obj | undefined {
  return manifests.map((m) => m.doc).find((d) => d.kind === 'Deployment'
    && (d.spec.template.spec.containers as Obj[]).some((c) => c.args?.[0] === 'serve' && envOf(c, configMaps).SWITCHBOARD_ROLE === role));
}

t.test('Kubernetes manifests: an edge pool and a host pool with keepers', async (t) => {
  t.ok(manifests.length >= 12, `${manifests.length} objects parsed`);
  const kustomization = manifests.find((m) => m.doc.kind === 'Kustomization')!.doc;
  for (const { file, doc } of manifests) {
    if (doc !== kustomization) t.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: ${doc.kind} ${doc.metadata?.name} has apiVersion, kind, name`);
  }
  const listed = new Set(kustomization.resources as string[]);
  for (const r of listed) t.ok(existsSync(join(K8S, r)), `kustomization resource ${r} exists`);
  for (const { file, doc } of manifests) {
    if (doc !== kustomization && file !== 'secret.example.yaml') t.ok(listed.has(file), `${file} is in the kustomization`);
  }

  const configMaps = new Map(manifests.filter((m) => m.doc.kind === 'ConfigMap').map((m) => [m.doc.metadata.name as string, m.doc.data as Record<string, string>]));
  const edge = pool('edge', configMaps);
  const host = pool('host', configMaps);
  t.ok(edge, 'a Deployment of edges (SWITCHBOARD_ROLE=edge)');
  t.ok(host, 'a Deployment of hosts (SWITCHBOARD_ROLE=host)');
  if (!edge || !host) return;
  t.not(edge.metadata.name, host.metadata.name);
  const deployments = manifests.filter((m) => m.doc.kind === 'Deployment').map((m) => m.doc);
  t.equal(deployments.length, 2, 'no other Deployment of nodes (no `both`)');

  const secret = find('Secret', 'switchboard')!;
  const secretKeys = new Set(Object.keys(secret.stringData));
  const serverRoutes = readFileSync(join(ROOT, 'src', 'edge', 'server.ts'), 'utf8');

  for (const d of [edge, host]) {
    const name = d.metadata.name as string;
    const pod = d.spec.template.spec;
    const podLabels = d.spec.template.metadata.labels as Record<string, string>;
    t.ok(matches(d.spec.selector.matchLabels, podLabels), `${name} selects its pods`);
    const other = d === edge ? host : edge;
    t.notOk(matches(d.spec.selector.matchLabels, other.spec.template.metadata.labels), `${name}'s selector does not take the other pool's pods`);
    t.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, `${name}: a rollout keeps every ready pod until its replacement is ready`);

    const node = (pod.containers as Obj[]).find((c) => c.args?.[0] === 'serve')!;
    const env = envOf(node, configMaps);
    const config = loadConfig([], env);
    t.equal(config.role, d === edge ? 'edge' : 'host', `${name}: its settings parse, role ${config.role}`);
    const portNames = new Set((node.ports as Obj[]).map((p) => p.name));
    for (const kind of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const probe = node[kind]?.httpGet;
      t.ok(probe && OPEN_ROUTES.includes(probe.path) && serverRoutes.includes(`this.app.get('${probe.path}'`), `${name}: ${kind} GET ${probe?.path} is a real open route`);
      t.ok(portNames.has(probe?.port), `${name}: ${kind} uses a declared port`);
    }
    t.equal(node.readinessProbe.httpGet.path, '/readyz', `${name}: readiness is /readyz (it fails while draining)`);
    t.equal(node.livenessProbe.httpGet.path, '/healthz', `${name}: liveness is /healthz`);

    t.equal(pod.securityContext.runAsNonRoot, true, `${name}: non-root`);
    t.ok(pod.securityContext.runAsUser > 0, `${name}: a non-zero uid`);
    for (const c of containersOf(pod)) {
      t.equal(c.securityContext.allowPrivilegeEscalation, false, `${name}/${c.name}: no privilege escalation`);
      t.same(c.securityContext.capabilities.drop, ['ALL'], `${name}/${c.name}: no capabilities`);
      t.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${name}/${c.name} requests CPU and memory`);
      t.ok(COMMANDS.has(c.args?.[0]), `${name}/${c.name} runs \`switchboard ${c.args?.[0]}\``);
      const names = [...Object.keys(envOf(c, configMaps))];
      t.same(names.filter((k) => !SETTINGS.has(k)), [], `${name}/${c.name}: every variable is a setting (${names.length})`);
      for (const e of (c.env ?? []) as Obj[]) if (e.valueFrom?.secretKeyRef) t.ok(secretKeys.has(e.valueFrom.secretKeyRef.key), `secret key ${e.valueFrom.secretKeyRef.key} is in the example Secret`);
      const volumes = new Set((pod.volumes as Obj[]).map((v) => v.name));
      for (const m of (c.volumeMounts ?? []) as Obj[]) t.ok(volumes.has(m.name), `${name}/${c.name}: volume ${m.name} exists`);
    }
  }

  // The edge pool: behind the Service, stopped gently.
  const edgePod = edge.spec.template.spec;
  const edgeNode = (edgePod.containers as Obj[]).find((c) => c.args?.[0] === 'serve')!;
  const drainS = Number(envOf(edgeNode, configMaps).SWITCHBOARD_DRAIN_DEADLINE_MS) / 1000;
  const preStop = edgeNode.lifecycle.preStop.exec.command as string[];
  t.equal(preStop[0], 'sleep', 'edges: preStop waits for load balancers to notice');
  t.ok(edgePod.terminationGracePeriodSeconds > Number(preStop[1]) + drainS, `edges: terminationGracePeriodSeconds ${edgePod.terminationGracePeriodSeconds} > preStop ${preStop[1]}s + drain ${drainS}s`);
  t.same(containersOf(edgePod).map((c) => c.args[0]), ['serve'], 'edges run no keeper');
  const service = find('Service', 'switchboard')!;
  t.ok(matches(service.spec.selector, edge.spec.template.metadata.labels), 'the Service selects the edges');
  t.notOk(matches(service.spec.selector, host.spec.template.metadata.labels), 'and not the hosts (they take no clients)');
  t.equal(service.spec.sessionAffinity, 'None', 'no stickiness');
  const edgePorts = new Set((edgeNode.ports as Obj[]).map((p) => p.name));
  for (const p of service.spec.ports as Obj[]) t.ok(edgePorts.has(p.targetPort), `Service port ${p.name} targets an edge container port`);

  // The host pool: a keeper container beside the node, sharing the socket's directory.
  const hostPod = host.spec.template.spec;
  const hostNode = (hostPod.containers as Obj[]).find((c) => c.args?.[0] === 'serve')!;
  const keeper = containersOf(hostPod).find((c) => c.args?.[0] === 'keeper');
  t.ok(keeper, 'the host pod runs `switchboard keeper` in a container of its own');
  if (!keeper) return;
  t.not(keeper, hostNode);
  t.equal(keeper.image, hostNode.image, 'from the same image');
  const socketVolume = (c: Obj): string | undefined => (c.volumeMounts as Obj[] | undefined)?.find((m) => m.mountPath === KEEPER_SOCKET_DIR)?.name;
  const volume = (hostPod.volumes as Obj[]).find((v) => v.name === socketVolume(hostNode));
  t.ok(volume?.emptyDir, `the node mounts an emptyDir at ${KEEPER_SOCKET_DIR}`);
  t.equal(socketVolume(keeper), volume?.name, 'the keeper mounts the same volume there');
  checkKeeperPair(t, 'host pod', keeper.args, envOf(keeper, configMaps), envOf(hostNode, configMaps));
  t.notOk(keeper.envFrom, 'the keeper gets no ConfigMap: only what it needs');
  t.notOk(keeper.livenessProbe, 'no liveness probe on the keeper: restarting it ends every shell');
  t.same(keeper.startupProbe?.exec?.command, ['node', '/app/dist/cli/main.js', 'keeper', '--check'], 'the node starts once the keeper answers');
  t.same(parseKeeperArgs(keeper.startupProbe.exec.command.slice(3), envOf(keeper, configMaps)).check, true, 'a probe the CLI takes');

  // Stopping a host pod: the node drains while the keeper still holds the terminals
  // (a sidecar stops after the main containers; a plain container waits in preStop).
  const hostEnv = envOf(hostNode, configMaps);
  const hostDrainS = Number(hostEnv.SWITCHBOARD_DRAIN_DEADLINE_MS) / 1000;
  const nodePreStopS = Number(hostNode.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  const isSidecar = (hostPod.initContainers ?? []).includes(keeper) && keeper.restartPolicy === 'Always';
  const keeperPreStopS = Number(keeper.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  t.ok(isSidecar || keeperPreStopS >= nodePreStopS + hostDrainS, 'the keeper outlives the node\'s drain (a native sidecar, or a preStop wait as long as the drain)');
  const KEEPER_STOP_S = 2; // SIGHUP to its shells, SIGKILL after STOP_GRACE_MS
  t.ok(hostPod.terminationGracePeriodSeconds > nodePreStopS + hostDrainS + KEEPER_STOP_S + (isSidecar ? 0 : keeperPreStopS - hostDrainS - nodePreStopS),
    `hosts: terminationGracePeriodSeconds ${hostPod.terminationGracePeriodSeconds} covers the drain (${hostDrainS}s) and the keeper's stop`);
  t.ok(Number(hostEnv.SWITCHBOARD_KEEPER_GRACE_MS) >= 10_000, `other hosts wait ${hostEnv.SWITCHBOARD_KEEPER_GRACE_MS} ms for a restarted node container before taking its terminals`);
  t.ok((hostNode.volumeMounts as Obj[]).every((m) => m.mountPath !== '/home/node'), 'shells run in the keeper container: $HOME is its');
  if (keeper.securityContext.readOnlyRootFilesystem) {
    const mounts = new Set((keeper.volumeMounts as Obj[]).map((m) => m.mountPath));
    t.ok(mounts.has('/tmp') && mounts.has('/home/node'), 'a read-only image still gives shells a writable $HOME and /tmp');
  }

  // Disruption budgets: one pod of each pool at a time.
  for (const d of [edge, host]) {
    const pdb = manifests.map((m) => m.doc).find((x) => x.kind === 'PodDisruptionBudget' && matches(x.spec.selector.matchLabels, d.spec.template.metadata.labels));
    t.ok(pdb, `a PodDisruptionBudget covers ${d.metadata.name}`);
    t.equal(pdb?.spec.maxUnavailable, 1, `${d.metadata.name}: evictions take one pod at a time`);
  }
  const hostPdb = find('PodDisruptionBudget', 'switchboard-host')!;
  t.notOk(matches(hostPdb.spec.selector.matchLabels, edge.spec.template.metadata.labels), 'the host budget does not count edges');

  // Autoscalers point at Deployments that exist: hosts on the scaling signal, edges on CPU.
  const hpas = manifests.filter((m) => m.doc.kind === 'HorizontalPodAutoscaler').map((m) => m.doc);
  for (const hpa of hpas) {
    const target = find(hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
    t.ok(target, `HPA ${hpa.metadata.name} scales ${hpa.spec.scaleTargetRef.kind} ${hpa.spec.scaleTargetRef.name}, which exists`);
    t.ok(hpa.spec.minReplicas >= 2, `${hpa.metadata.name}: never below two`);
  }
  const onSignal = hpas.find((h) => h.spec.metrics[0].pods?.metric.name === 'switchboard_scaling_signal')!;
  t.equal(onSignal.spec.scaleTargetRef.name, host.metadata.name, 'the scaling signal (sessions ÷ capacity) scales the host pool');
  const onCpu = hpas.find((h) => h.spec.metrics[0].resource?.name === 'cpu');
  t.equal(onCpu?.spec.scaleTargetRef.name, edge.metadata.name, 'CPU scales the edge pool');
  t.ok(edgeNode.resources.requests.cpu, 'edges request CPU (utilization is measured against it)');

  // The Redis and PostgreSQL the nodes are pointed at exist, with persistent volumes.
  const redisHost = new URL(configMaps.get('switchboard')!.SWITCHBOARD_REDIS_URL!).hostname;
  const redis = find('StatefulSet', redisHost)!;
  t.ok(find('Service', redisHost), `a Service named ${redisHost} (SWITCHBOARD_REDIS_URL)`);
  t.match((redis.spec.template.spec.containers[0].args as string[]).join(' '), /--appendonly yes/, 'Redis keeps an append-only file');
  const dbHost = new URL(secret.stringData['database-url']).hostname;
  const postgres = find('StatefulSet', dbHost)!;
  t.ok(find('Service', dbHost), `a Service named ${dbHost} (database-url)`);
  for (const ss of [redis, postgres]) {
    t.equal(ss.spec.template.spec.securityContext?.runAsNonRoot, true, `${ss.metadata.name} runs as non-root`);
    t.ok(ss.spec.template.spec.containers[0].resources?.requests?.memory, `${ss.metadata.name} requests memory`);
    const claims = new Set((ss.spec.volumeClaimTemplates as Obj[]).map((v) => v.metadata.name));
    const mounted = (ss.spec.template.spec.containers[0].volumeMounts as Obj[]).map((m) => m.name);
    t.ok(mounted.length > 0 && mounted.every((m) => claims.has(m)), `${ss.metadata.name} stores its data on a persistent volume claim`);
  }
});
