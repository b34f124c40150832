/**
 * otel-config/k8s/daemonset.yaml checked against itself, the Collector
 * configs, the tracer's own parsers and the measured figures: RBAC, the
 * sidecar order, the agent's memory settings and pipelines, the tracer's
 * security context, mounts and env, the fleet profile, the tracer's memory
 * limit against docs/benchmarks.md.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultRingbufBytes } from '../src/defaults.ts';
import { parseCli } from '../src/options.ts';
import { resolveOtlpConfig } from '../src/otlp/config.ts';
import { execForm, parseDockerfile, TRACER_START_CAPABILITIES } from './helpers/dockerfile.ts';

import { collectors, files, list, manifests, num, obj, pipelines, ROOT, str, type Json } from './helpers/otel-config.ts';

// ---- the DaemonSet ----

const byKind = (kind: string): Json[] => manifests.filter((m) => m['kind'] === kind);
const daemonSet = byKind('DaemonSet')[0] ?? {};
const podSpec = obj(obj(obj(daemonSet['spec'])['template'])['spec']);
const initContainers = list(podSpec['initContainers']).map(obj);
const containers = list(podSpec['containers']).map(obj);
const isCollector = (c: Json): boolean => /opentelemetry-collector/.test(str(c['image']));
const sidecar = initContainers.find(isCollector) ?? {};
const tracer = containers.find((c) => /tcptracer-otel/.test(str(c['image']))) ?? {};
const envOf = (c: Json, name: string): string => str(obj(list(c['env']).map(obj).find((e) => e['name'] === name))['value']);
const agent = collectors.find((c) => c.where.includes('ConfigMap'))?.config ?? {};

/**
 * The tracer container's environment as the process sees it: literal values, with the downward
 * API's `valueFrom` variables given stand-in values and `$(VAR)` expanded as Kubernetes does.
 */
function tracerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of list(tracer['env']).map(obj)) {
    const value = 'valueFrom' in e ? `downward-${str(e['name']).toLowerCase()}` : str(e['value']);
    env[str(e['name'])] = value.replace(/\$\((\w+)\)/g, (ref, name: string) => env[name] ?? ref);
  }
  return env;
}

/** The tracer's command line in the pod: the image's ENTRYPOINT (after `node dist/src/cli.js`), then the container's args. */
function tracerArgv(): string[] {
  const entry = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).at(-1)?.instructions.find((i) => i.op === 'ENTRYPOINT');
  assert.ok(entry, 'the Dockerfile has an ENTRYPOINT');
  const argv = execForm(entry);
  const cli = argv.indexOf('dist/src/cli.js');
  assert.ok(cli > 0, `ENTRYPOINT runs the CLI: ${argv.join(' ')}`);
  assert.equal(tracer['command'], undefined, "the container keeps the image's entrypoint");
  return [...argv.slice(cli + 1), ...list(tracer['args']).map(str)];
}

/** Mi / Gi / MiB quantities in MiB. */
function mib(quantity: string): number {
  const m = /^(\d+)(Mi|Gi|MiB|GiB)$/.exec(quantity);
  assert.ok(m, `memory quantity ${quantity}`);
  return Number(m[1]) * (m[2]?.startsWith('G') ? 1024 : 1);
}

/** The capabilities the tracer needs at start, and only then (the DaemonSet's header says why for each). */
const TRACER_CAPABILITIES = TRACER_START_CAPABILITIES;
/** bpf/tcptracer.bpf.c's `socks` map: max_entries, and an upper bound of one element (key, value, hash-table element header). */
const SOCK_MAP_ENTRIES = 131072;
const SOCK_MAP_ENTRY_BYTES = 256;

/** Assumed, not measured here: data held in the Collector's memory takes this many times its serialized size. */
const IN_MEMORY_EXPANSION = 3;
/** Assumed: the agent's own baseline (binary, pod metadata cache, buffers) under the soft limit. */
const AGENT_BASELINE_MIB = 64;

describe('otel-config/k8s/daemonset.yaml', () => {
  it('has the objects it needs, in a namespace labelled for Pod Security level privileged', () => {
    for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet']) {
      assert.equal(byKind(kind).length, 1, kind);
    }
    const ns = byKind('Namespace')[0]!;
    const name = str(obj(ns['metadata'])['name']);
    assert.equal(obj(obj(ns['metadata'])['labels'])['pod-security.kubernetes.io/enforce'], 'privileged');
    for (const m of manifests.filter((x) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(str(x['kind'])))) {
      assert.equal(obj(m['metadata'])['namespace'], name, `${str(m['kind'])} lives in ${name}`);
    }
  });

  it('grants the ServiceAccount every resource k8s_attributes reads for what it extracts, and no more', () => {
    const k8s = obj(obj(agent['processors'])['k8s_attributes']);
    const extract = obj(k8s['extract']);
    const metadata = list(extract['metadata']).map(str);
    const fromOf = (key: string): string[] => list(extract[key]).map((x) => str(obj(x)['from']) || 'pod');
    // contrib processor/k8sattributesprocessor v1.0.0 README, "Role-based access control", and
    // internal/kube/client.go: the deployment name alone is derived from the pod's ReplicaSet owner.
    const needed = new Set(['/pods', '/namespaces']);
    const fromWorkload = [...fromOf('labels'), ...fromOf('annotations')].some((f) => f === 'deployment' || f === 'replicaset');
    if (metadata.some((m) => /^k8s\.(deployment\.uid|replicaset\.)/.test(m)) || fromWorkload) needed.add('apps/replicasets');
    if (metadata.includes('k8s.node.uid') || [...fromOf('labels'), ...fromOf('annotations')].includes('node')) needed.add('/nodes');
    if (metadata.some((m) => m.startsWith('k8s.cronjob.'))) needed.add('batch/jobs');
    const granted = new Set<string>();
    for (const rule of list(obj(byKind('ClusterRole')[0])['rules']).map(obj)) {
      const verbs = list(rule['verbs']).map(str);
      assert.deepEqual([...verbs].sort(), ['get', 'list', 'watch'], 'read-only verbs');
      for (const group of list(rule['apiGroups']).map(str)) {
        for (const resource of list(rule['resources']).map(str)) granted.add(`${group}/${resource}`);
      }
    }
    assert.deepEqual([...granted].sort(), [...needed].sort());
    const binding = byKind('ClusterRoleBinding')[0]!;
    assert.equal(obj(binding['roleRef'])['name'], obj(byKind('ClusterRole')[0]!['metadata'])['name']);
    const subject = obj(list(binding['subjects'])[0]);
    assert.equal(subject['name'], podSpec['serviceAccountName']);
    assert.equal(subject['namespace'], obj(daemonSet['metadata'])['namespace']);
  });

  it("extracts the traced workload's namespace, pod, deployment and container names", () => {
    const metadata = list(obj(obj(obj(agent['processors'])['k8s_attributes'])['extract'])['metadata']).map(str);
    for (const name of ['k8s.namespace.name', 'k8s.pod.name', 'k8s.deployment.name', 'k8s.container.name']) {
      assert.ok(metadata.includes(name), `${name} (extracted: ${metadata.join(', ')})`);
    }
    assert.ok(!metadata.includes('k8s.node.name'), 'the node name comes from the downward API, on every record and span (host processes too)');
  });

  it('runs the Collector as a native sidecar, started before and stopped after the tracer', () => {
    assert.equal(sidecar['restartPolicy'], 'Always', 'the Collector is an init container with restartPolicy: Always (Kubernetes >= 1.29)');
    assert.ok(!containers.some(isCollector), 'the Collector is not an ordinary container');
    assert.ok(tracer['name'], 'the tracer is an ordinary container');
    const grpc = str(obj(obj(obj(obj(agent['receivers'])['otlp'])['protocols'])['grpc'])['endpoint']);
    assert.match(grpc, /^127\.0\.0\.1:\d+$/, 'the agent listens on the pod loopback only');
    assert.equal(envOf(tracer, 'OTEL_EXPORTER_OTLP_ENDPOINT'), `http://${grpc}`);
    const health = /:(\d+)$/.exec(str(obj(obj(agent['extensions'])['health_check'])['endpoint']))?.[1];
    const probe = obj(obj(sidecar['startupProbe'])['httpGet']);
    assert.equal(String(probe['port']), health, 'the startupProbe (the tracer waits for it) asks the health_check extension');
    // The tracer's shutdown flush (TCPTRACER_OTLP_SHUTDOWN_TIMEOUT, 5 s default) and the Collector's drain.
    assert.ok(num(podSpec['terminationGracePeriodSeconds']) >= 15);
  });

  it('gives the agent memory settings that agree: container limit, GOMEMLIMIT, memory_limiter, sending queues', (t) => {
    const limit = mib(str(obj(obj(sidecar['resources'])['limits'])['memory']));
    const goMemLimit = mib(envOf(sidecar, 'GOMEMLIMIT'));
    const limiter = obj(obj(agent['processors'])['memory_limiter']);
    const hard = num(limiter['limit_mib']);
    const spike = num(limiter['spike_limit_mib']);
    assert.ok(goMemLimit <= limit * 0.85, `GOMEMLIMIT ${goMemLimit} MiB leaves room under the ${limit} MiB container limit`);
    assert.ok(hard <= goMemLimit, `memory_limiter limit ${hard} MiB <= GOMEMLIMIT ${goMemLimit} MiB`);
    assert.ok(spike > 0 && spike < hard);
    const soft = hard - spike;
    let queued = 0;
    for (const [id, settings] of Object.entries(obj(agent['exporters']))) {
      const queue = obj(obj(settings)['sending_queue']);
      assert.equal(queue['sizer'], 'bytes', `${id}: a queue in bytes, so that it can be compared with memory`);
      const signals = pipelines(agent).filter((p) => p.exporters.includes(id)).length;
      queued += signals * (num(queue['queue_size']) + num(obj(queue['batch'])['max_size']));
    }
    const queuedMib = (queued / 2 ** 20) * IN_MEMORY_EXPANSION;
    t.diagnostic(`limit ${limit} MiB, GOMEMLIMIT ${goMemLimit}, memory_limiter ${hard}/${soft} (hard/soft), queues ~${queuedMib} MiB in memory at ${IN_MEMORY_EXPANSION}x`);
    assert.ok(queuedMib + AGENT_BASELINE_MIB <= soft, `full queues (~${queuedMib} MiB in memory) fit under the soft limit ${soft} MiB`);
  });

  it('starts the tracer as root with only the capabilities it needs to attach, read-only, dropping to nobody itself', () => {
    assert.equal(podSpec['hostPID'], true, 'host PIDs, and /proc/PID/cgroup of every traced process');
    assert.equal(podSpec['hostNetwork'], false);
    assert.notEqual(podSpec['hostUsers'], false, 'no user namespace: BPF and PERFMON must be capabilities of the initial one');
    const security = obj(tracer['securityContext']);
    assert.equal(security['privileged'], false);
    assert.equal(security['allowPrivilegeEscalation'], false);
    assert.equal(security['readOnlyRootFilesystem'], true);
    assert.equal(security['runAsUser'], 0, 'root at start: Kubernetes gives added capabilities to uid 0 only');
    for (const context of [security, obj(podSpec['securityContext'])]) {
      assert.notEqual(context['runAsNonRoot'], true, 'runAsNonRoot would refuse to start a uid 0 container');
    }
    const caps = obj(security['capabilities']);
    assert.deepEqual(list(caps['drop']).map(str), ['ALL']);
    assert.deepEqual(list(caps['add']).map(str).sort(), [...TRACER_CAPABILITIES].sort());
    assert.ok(!list(tracer['args']).map(str).includes('--user'), 'the default --user (nobody) applies');
    const text = files.find((f) => f.rel.endsWith('daemonset.yaml'))?.text ?? '';
    const header = text.slice(0, text.indexOf('\n---'));
    for (const cap of TRACER_CAPABILITIES) assert.match(header, new RegExp(`^#\\s+(${cap}\\b|\\S+,\\s+${cap}\\b)|^#\\s+${cap},`, 'm'), `the header says why ${cap} is needed`);
    assert.match(header, /runAsNonRoot/, 'the header says why runAsNonRoot cannot be used');
    assert.match(header, /nobody/, 'the header says the tracer drops to nobody');
  });

  it("mounts the host's cgroup v2 tree read-only where TCPTRACER_CGROUP_ROOT points, BTF and tracefs read-only", () => {
    const volumes = new Map(list(podSpec['volumes']).map(obj).map((v) => [str(v['name']), str(obj(v['hostPath'])['path'])]));
    const mounts = list(tracer['volumeMounts']).map(obj);
    const mountOf = (hostPath: string): Json | undefined => mounts.find((m) => volumes.get(str(m['name'])) === hostPath);
    const cgroup = mountOf('/sys/fs/cgroup');
    assert.ok(cgroup, 'a hostPath volume of /sys/fs/cgroup mounted in the tracer');
    assert.equal(cgroup['readOnly'], true);
    assert.equal(envOf(tracer, 'TCPTRACER_CGROUP_ROOT'), str(cgroup['mountPath']));
    assert.notEqual(str(cgroup['mountPath']), '/sys/fs/cgroup', "not over the container's own cgroup mount");
    for (const path of ['/sys/kernel/btf', '/sys/kernel/tracing']) {
      const m = mountOf(path);
      assert.ok(m && m['mountPath'] === path && m['readOnly'] === true, `${path} from the host, read-only, at the same path`);
    }
  });

  it('gives every record and span k8s.node.name from the downward API', () => {
    const env = list(tracer['env']).map(obj);
    const resourceAt = env.findIndex((e) => e['name'] === 'OTEL_RESOURCE_ATTRIBUTES');
    const pairs = new Map(str(env[resourceAt]?.['value']).split(',').map((kv) => kv.split('=') as [string, string]));
    const ref = /^\$\((\w+)\)$/.exec(pairs.get('k8s.node.name') ?? '')?.[1];
    assert.ok(ref, 'k8s.node.name=$(VAR) in OTEL_RESOURCE_ATTRIBUTES');
    const varAt = env.findIndex((e) => e['name'] === ref);
    assert.ok(varAt >= 0 && varAt < resourceAt, `${ref} is defined before OTEL_RESOURCE_ATTRIBUTES (Kubernetes expands only earlier variables)`);
    assert.equal(obj(obj(env[varAt]?.['valueFrom'])['fieldRef'])['fieldPath'], 'spec.nodeName');
    const filterVar = str(obj(obj(obj(agent['processors'])['k8s_attributes'])['filter'])['node_from_env_var']);
    const sidecarVar = list(sidecar['env']).map(obj).find((e) => e['name'] === filterVar);
    assert.equal(obj(obj(sidecarVar?.['valueFrom'])['fieldRef'])['fieldPath'], 'spec.nodeName', "the agent watches only this node's pods");
  });

  it('runs the fleet profile: metrics, traceidratio-sampled records and spans, every failed connect', () => {
    const env = tracerEnv();
    const cfg = resolveOtlpConfig({}, env); // throws, naming the variable, on any value the tracer refuses
    assert.deepEqual([...cfg.signals], ['logs', 'traces', 'metrics'], 'TCPTRACER_OTLP_SIGNALS');
    assert.equal(cfg.sampling.sampler, 'traceidratio');
    assert.equal(cfg.sampling.source, 'OTEL_TRACES_SAMPLER');
    assert.ok(cfg.sampling.ratio > 0 && cfg.sampling.ratio < 1, `a ratio that samples: ${cfg.sampling.ratio}`);
    assert.ok(cfg.metricExport.intervalMs >= 10_000 && cfg.metricExport.intervalMs <= 60_000, `metrics every ${cfg.metricExport.intervalMs} ms`);
    const opts = parseCli(tracerArgv(), env);
    assert.equal(opts.otlp, true);
    assert.equal(opts.failed, true, 'every failed connect has its record (--failed)');
    assert.equal(opts.sample, undefined, 'the sampler comes from the environment the header documents');
    const header = (files.find((f) => f.rel.endsWith('daemonset.yaml'))?.text ?? '').split('\n---')[0] ?? '';
    assert.match(header, new RegExp(`OTEL_TRACES_SAMPLER_ARG=${env['OTEL_TRACES_SAMPLER_ARG']?.replace('.', '\\.') ?? '?'}\\b`), 'the header names the ratio shipped');
  });

  it("gives every signal the tracer exports a pipeline in the agent, metrics with a queue of their own", () => {
    const signals = resolveOtlpConfig({}, tracerEnv()).signals;
    const ps = pipelines(agent);
    for (const signal of signals) assert.ok(ps.some((p) => p.signal === signal && p.receivers.includes('otlp')), `a ${signal} pipeline from the otlp receiver`);
    const metrics = ps.filter((p) => p.signal === 'metrics').flatMap((p) => p.exporters);
    const others = ps.filter((p) => p.signal !== 'metrics').flatMap((p) => p.exporters);
    assert.ok(metrics.length > 0 && metrics.every((id) => !others.includes(id)), `metrics exporters ${metrics.join(', ')} are not the logs' and traces'`);
  });

  it("sets the tracer's memory limit above its ring buffer, socket map and measured peak RSS", (t) => {
    const resources = obj(tracer['resources']);
    const limit = mib(str(obj(resources['limits'])['memory']));
    const request = mib(str(obj(resources['requests'])['memory']));
    // Kernel memory charged to the container's cgroup (kernels >= 5.11): the ring buffer and, at most, the socket map.
    const ringbufBytes = defaultRingbufBytes(resolveOtlpConfig({}, tracerEnv()).signals);
    const ringbufMib = ringbufBytes / 2 ** 20;
    const sockMapMib = (SOCK_MAP_ENTRIES * SOCK_MAP_ENTRY_BYTES) / 2 ** 20;
    // The benchmark's peak RSS (logs; logs and traces when reported), with its ring buffer mapping
    // (reported on the same row) replaced by this ring buffer mapped once: a row measured with
    // another ring buffer size still says what the rest of the process takes.
    const bench = readFileSync(join(ROOT, 'docs', 'benchmarks.md'), 'utf8');
    const rows = ['otlp', 'otlp-traces'].flatMap((config) => {
      const m = new RegExp(`OTLP peak RSS under full load \\| ${config} \\| (\\d+) MB \\|[^\\n]*?ring buffer mapping (\\d+) MB`).exec(bench);
      return m ? [{ config, rss: Number(m[1]), ring: Number(m[2]) }] : [];
    });
    assert.ok(rows.some((r) => r.config === 'otlp' && r.rss > 0), 'docs/benchmarks.md reports the OTLP peak RSS and its ring buffer mapping');
    const rssMb = Math.max(...rows.map((r) => r.rss - r.ring + ringbufBytes / 1e6));
    const needed = ringbufMib + sockMapMib + (rssMb * 1e6) / 2 ** 20;
    t.diagnostic(`benchmark rows ${rows.map((r) => `${r.config} ${r.rss} MB (ring ${r.ring})`).join(', ')} -> ${rssMb.toFixed(0)} MB with a ${ringbufMib} MiB ring mapped once`);
    t.diagnostic(`limit ${limit} MiB, request ${request} MiB; ring buffer ${ringbufMib} + socket map <= ${sockMapMib.toFixed(0)} + peak RSS = ${needed.toFixed(0)} MiB`);
    assert.ok(needed <= limit, `${needed.toFixed(0)} MiB needed, limit ${limit} MiB`);
    assert.ok(request <= limit && request >= ringbufMib + sockMapMib, `request ${request} MiB: at least the BPF memory, at most the limit`);
  });
});
