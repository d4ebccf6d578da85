/**
 * The deployment files, read as their tools would read them:
 * - the Dockerfile's build stage copies every file and directory `npm run build` needs
 *   (from package.json's build script, the tsconfigs it compiles, what their sources
 *   import, and what the page build script reads), before `npm ci` runs it;
 * - compose keeps Redis (append-only) and PostgreSQL on volumes and gives a drain time;
 * - the Kubernetes manifests parse and carry probes, preStop, a grace period longer than
 *   the drain, non-root security contexts, resource requests, matching selectors, and
 *   the Redis and PostgreSQL the nodes are pointed at.
 * Every SWITCHBOARD_* variable they set is a real setting.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { settingNames } from '../src/config/config.js';

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

// ─── compose ──────────────────────────────────────────────────────────────────

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }> | string[];
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`duration ${duration}`);
  return Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1);
}

t.test('compose: Redis and PostgreSQL keep their data; nodes get time to drain', async (t) => {
  const compose = parse(readFileSync(join(ROOT, 'docker', 'compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>; volumes: Record<string, unknown>;
  };
  const { services } = compose;
  const redis = services.redis!;
  t.match(redis.command!.join(' '), /--appendonly yes/, 'Redis writes an append-only file');
  const named = (svc: ComposeService, target: string): string | undefined => svc.volumes?.map((v) => v.split(':')).find(([, to]) => to === target)?.[0];
  t.ok(named(redis, '/data') && named(redis, '/data')! in compose.volumes, 'Redis /data is a named volume');
  t.ok(named(services.postgres!, '/var/lib/postgresql/data')! in compose.volumes, 'PostgreSQL data is a named volume');

  const nodes = Object.entries(services).filter(([, s]) => s.build?.dockerfile === 'docker/Dockerfile');
  t.equal(nodes.length, 3, 'three nodes');
  for (const [name, s] of nodes) {
    const env = s.environment!;
    t.equal(env.SWITCHBOARD_NODE_ID, name, `${name} has its own stable id`);
    const drainS = Number(env.SWITCHBOARD_DRAIN_DEADLINE_MS ?? 30_000) / 1000;
    t.ok(seconds(s.stop_grace_period!) > drainS, `${name}: stop_grace_period ${s.stop_grace_period} > drain deadline ${drainS}s`);
    t.same(Object.keys(env).filter((k) => k.startsWith('SWITCHBOARD_') && !SETTINGS.has(k)), [], `${name}: every SWITCHBOARD_* variable is a setting`);
    t.same(s.depends_on, { redis: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' } }, `${name} starts once Redis and PostgreSQL are healthy`);
  }
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

t.test('Kubernetes manifests', async (t) => {
  t.ok(manifests.length >= 9, `${manifests.length} objects parsed`);
  const kustomization = manifests.find((m) => m.doc.kind === 'Kustomization')!.doc;
  for (const { file, doc } of manifests) {
    if (doc !== kustomization) t.ok(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: ${doc.kind} ${doc.metadata?.name} has apiVersion, kind, name`);
  }
  for (const r of kustomization.resources as string[]) t.ok(existsSync(join(K8S, r)), `kustomization resource ${r} exists`);

  const deployment = find('Deployment', 'switchboard')!;
  t.ok(deployment, 'a Deployment');
  const pod = deployment.spec.template.spec;
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  t.ok(matches(deployment.spec.selector.matchLabels, podLabels), 'the Deployment selects its pods');
  const c = pod.containers.find((x: Obj) => x.name === 'switchboard');
  t.equal(c.readinessProbe.httpGet.path, '/readyz', 'readiness: /readyz');
  t.equal(c.livenessProbe.httpGet.path, '/healthz', 'liveness: /healthz');
  const portNames = new Set((c.ports as Obj[]).map((p) => p.name));
  t.ok(portNames.has(c.readinessProbe.httpGet.port) && portNames.has(c.livenessProbe.httpGet.port), 'probes use declared ports');

  const config = find('ConfigMap', 'switchboard')!;
  const drainS = Number(config.data.SWITCHBOARD_DRAIN_DEADLINE_MS) / 1000;
  const preStop = c.lifecycle.preStop.exec.command as string[];
  t.equal(preStop[0], 'sleep', 'preStop waits for load balancers to notice');
  const preStopS = Number(preStop[1]);
  t.ok(pod.terminationGracePeriodSeconds > preStopS + drainS, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${preStopS}s + drain deadline ${drainS}s`);
  t.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, 'rolling updates keep every ready pod until its replacement is ready');

  t.equal(pod.securityContext.runAsNonRoot, true, 'pods run as non-root');
  t.ok(pod.securityContext.runAsUser > 0, 'with a non-zero uid');
  t.equal(c.securityContext.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.same(c.securityContext.capabilities.drop, ['ALL'], 'no capabilities');
  if (c.securityContext.readOnlyRootFilesystem) {
    const mounts = new Set((c.volumeMounts as Obj[]).map((m) => m.mountPath));
    t.ok(mounts.has('/tmp') && mounts.has('/home/node'), 'a read-only image still gives shells a writable $HOME and /tmp');
  }

  const env = [...Object.keys(config.data), ...(c.env as Obj[]).map((e) => e.name as string)];
  t.same(env.filter((k) => k.startsWith('SWITCHBOARD_') && !SETTINGS.has(k)), [], 'every SWITCHBOARD_* variable is a setting');
  t.same((c.envFrom as Obj[]).map((e) => e.configMapRef.name), ['switchboard'], 'settings come from the ConfigMap');

  for (const { doc } of manifests.filter((m) => ['Deployment', 'StatefulSet'].includes(m.doc.kind))) {
    for (const container of doc.spec.template.spec.containers as Obj[]) {
      t.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${doc.metadata.name}/${container.name} requests CPU and memory`);
      t.equal(doc.spec.template.spec.securityContext?.runAsNonRoot, true, `${doc.metadata.name} runs as non-root`);
    }
  }

  const service = find('Service', 'switchboard')!;
  t.ok(matches(service.spec.selector, podLabels), 'the Service selects the pods');
  t.equal(service.spec.sessionAffinity, 'None', 'no stickiness');
  for (const p of service.spec.ports as Obj[]) t.ok(portNames.has(p.targetPort), `Service port ${p.name} targets a container port`);
  const pdb = find('PodDisruptionBudget', 'switchboard')!;
  t.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'the PodDisruptionBudget covers the pods');
  t.ok(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable !== undefined, 'and limits evictions');
  const hpa = find('HorizontalPodAutoscaler', 'switchboard')!;
  t.same([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', 'switchboard'], 'the HPA scales the Deployment');
  t.equal(hpa.spec.metrics[0].pods.metric.name, 'switchboard_scaling_signal', 'on the scaling signal');
  t.ok(hpa.spec.minReplicas >= 2, 'never below two nodes');

  // The Redis and PostgreSQL the nodes are pointed at exist, with persistent volumes.
  const redisHost = new URL(config.data.SWITCHBOARD_REDIS_URL).hostname;
  const redis = find('StatefulSet', redisHost)!;
  t.ok(find('Service', redisHost), `a Service named ${redisHost} (SWITCHBOARD_REDIS_URL)`);
  t.match((redis.spec.template.spec.containers[0].args as string[]).join(' '), /--appendonly yes/, 'Redis keeps an append-only file');
  const secret = find('Secret', 'switchboard')!;
  const dbHost = new URL(secret.stringData['database-url']).hostname;
  const postgres = find('StatefulSet', dbHost)!;
  t.ok(find('Service', dbHost), `a Service named ${dbHost} (database-url)`);
  for (const ss of [redis, postgres]) {
    const claims = new Set((ss.spec.volumeClaimTemplates as Obj[]).map((v) => v.metadata.name));
    const mounted = (ss.spec.template.spec.containers[0].volumeMounts as Obj[]).map((m) => m.name);
    t.ok(mounted.length > 0 && mounted.every((m) => claims.has(m)), `${ss.metadata.name} stores its data on a persistent volume claim`);
  }
  const secretKeys = new Set(Object.keys(secret.stringData));
  for (const e of c.env as Obj[]) if (e.valueFrom?.secretKeyRef) t.ok(secretKeys.has(e.valueFrom.secretKeyRef.key), `secret key ${e.valueFrom.secretKeyRef.key} is in the example Secret`);
});
