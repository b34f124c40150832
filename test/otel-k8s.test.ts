/**
 * The DaemonSet's agent pipeline with the real Collector: its embedded config
 * (groupbyattrs, then k8s_attributes associating by container.id, then
 * k8s.pod.uid), talking to a fake Kubernetes API that lists one pod, receives
 * the records and spans of a real tracer. A process placed in a kubepods-like
 * cgroup of that pod's container comes out with the pod's name, namespace,
 * deployment and container name on its resource; a host process without.
 * The tracer's metrics go through the agent's own metrics pipeline and
 * exporter, without pod metadata (a series carries no container identity).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FakeKubeApi, type FakePod } from './fixtures/fake-kube-api.ts';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { cgroup2Root, kernelSuite, NetNs, removeCgroup, startPeer, startTracer, within } from './helpers/kernel.ts';
import { collector, daemonSetAgentConfig, freePort, otelSuite, type GoProgram } from './helpers/otel.ts';

const kernel = kernelSuite();
const otel = otelSuite();
const suite = { skip: kernel.skip || otel.skip };

const NODE = 'tt-node-1';

describe('the DaemonSet agent: k8s_attributes names the pod of a traced container', suite, () => {
  const pod: FakePod = {
    name: 'web-5d8f7c9b6-x2k4q',
    namespace: 'shop',
    uid: randomUUID(),
    nodeName: NODE,
    containerName: 'web',
    containerId: randomBytes(32).toString('hex'),
    replicaSet: 'web-5d8f7c9b6',
    deployment: 'web',
  };
  let api: FakeKubeApi;
  let gateway: TestCollector;
  let agent: GoProgram;
  let endpoint: string;
  let ns: NetNs;
  let dir: string;
  const cgroups: string[] = [];

  before(async () => {
    ns = new NetNs();
    api = new FakeKubeApi([pod]);
    await api.start();
    gateway = new TestCollector();
    await gateway.start();
    dir = mkdtempSync(join(tmpdir(), 'tt-otel-k8s-'));
    writeFileSync(join(dir, 'kubeconfig'), api.kubeconfig());
    writeFileSync(join(dir, 'agent.yaml'), daemonSetAgentConfig());
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    agent = collector(join(dir, 'agent.yaml'), [
      `receivers::otlp::protocols::grpc::endpoint=127.0.0.1:${port}`,
      `extensions::health_check::endpoint=127.0.0.1:${await freePort()}`,
      // The fake API is reached through a kubeconfig instead of the pod's service account.
      'processors::k8s_attributes::auth_type=kubeConfig',
      // Start only once the pod informer has synced: a record that came before would go unnamed.
      'processors::k8s_attributes::wait_for_metadata=true',
      `exporters::otlp_grpc/gateway::endpoint=${gateway.endpoint.replace('http://', '')}`,
      `exporters::otlp_grpc/gateway-metrics::endpoint=${gateway.endpoint.replace('http://', '')}`,
    ], { K8S_NODE_NAME: NODE, KUBECONFIG: join(dir, 'kubeconfig') });
    await agent.start();
    assert.ok(api.listed('/api/v1/pods'), `k8s_attributes listed the node's pods before it was ready: ${api.requests.join('; ')}`);
  });
  after(async () => {
    await agent.stop();
    gateway.stop();
    await api.stop();
    ns.delete();
    for (const c of cgroups.reverse()) await removeCgroup(c).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a record and span from the pod\'s container carry k8s.pod.name, k8s.namespace.name, the container and deployment', async () => {
    assert.ok(api.requests.some((r) => r.includes('fieldSelector=spec.nodeName%3D' + NODE)), `only its node's pods: ${api.requests.join('; ')}`);
    // systemd-driver containerd layout: kubepods...pod<uid>.slice/cri-containerd-<id>.scope
    let dir = join(cgroup2Root(), `tt-k8s-${randomBytes(3).toString('hex')}`);
    const u = pod.uid.replaceAll('-', '_');
    for (const part of ['', 'kubepods.slice', 'kubepods-burstable.slice', `kubepods-burstable-pod${u}.slice`, `cri-containerd-${pod.containerId}.scope`]) {
      dir = part ? join(dir, part) : dir;
      mkdirSync(dir);
      cgroups.push(dir);
    }
    const tracer = await startTracer(['--otlp', '-q', '-N', String(ns.inode), '--otlp-endpoint', endpoint, '--otlp-signals', 'logs,traces,metrics'], {
      json: false,
      env: { ...process.env, TCPTRACER_IDENTITY_WAIT_MS: '3000' },
    });
    const server = await startPeer(ns, ['server', '127.0.0.1', '7801', '1', 'tt-k8s-host']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7801', '1', 'tt-k8s-web', '1', 'wait']);
    writeFileSync(join(dir, 'cgroup.procs'), String(client.pid));
    client.child.stdin?.write('go\n');
    assert.equal(await within(client.exited, 60_000, 'client exit'), 0);
    assert.equal(await within(server.exited, 60_000, 'server exit'), 0);
    await gateway.waitForRecords(4, 30_000);
    await gateway.waitForSpans(2, 30_000);
    const { code, stderr } = await tracer.stop('SIGTERM');
    assert.equal(code, 0, stderr);

    const inPod = [
      ...gateway.records.filter((r) => r.attributes['process.pid'] === client.pid || r.resource['k8s.pod.uid'] === pod.uid),
      ...gateway.spans.filter((s) => s.attributes['process.pid'] === client.pid),
    ];
    assert.equal(inPod.length, 3, 'connect, close and the client span');
    for (const item of inPod) {
      assert.deepEqual(
        ['k8s.pod.name', 'k8s.namespace.name', 'k8s.container.name', 'k8s.deployment.name', 'container.id', 'k8s.pod.uid'].map((k) => item.resource[k]),
        [pod.name, pod.namespace, pod.containerName, pod.deployment, pod.containerId, pod.uid],
        `resource of ${JSON.stringify(item.resource)}`,
      );
    }
    const host = gateway.records.filter((r) => r.attributes['process.pid'] === server.pid);
    assert.equal(host.length, 2, 'accept and close of the host process');
    for (const r of host) assert.equal(r.resource['k8s.pod.name'], undefined, 'a host process is no pod');

    // The last collection, exported at the tracer's exit, through the agent's metrics pipeline.
    const connections = (): typeof gateway.metricPoints =>
      gateway.metricPoints.filter((p) => p.name === 'tcptracer.connections' && p.attributes['server.port'] === 7801);
    for (const deadline = Date.now() + 30_000; connections().length < 2 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 100));
    const byRole = new Map(connections().map((p) => [p.attributes['tcptracer.connection.role'], p]));
    assert.equal(byRole.get('client')?.value, 1, `the client's connection, counted: ${connections().map((p) => `${String(p.attributes['tcptracer.connection.role'])}=${p.value}`).join(', ')}`);
    assert.equal(byRole.get('server')?.value, 1, "the server's");
    const clientSeries = byRole.get('client');
    assert.equal(clientSeries?.resource['service.name'], 'tt-k8s-web', 'under the traced process, as its spans');
    // the container's series: its container.id and k8s.pod.uid moved to the resource, the workload named
    assert.deepEqual(
      ['k8s.pod.name', 'k8s.namespace.name', 'k8s.deployment.name', 'container.id', 'k8s.pod.uid'].map((k) => clientSeries.resource[k]),
      [pod.name, pod.namespace, pod.deployment, pod.containerId, pod.uid],
      `resource of ${JSON.stringify(clientSeries.resource)}`,
    );
    assert.equal(clientSeries.attributes['container.id'], undefined, 'moved, not copied');
    assert.equal(byRole.get('server')?.resource['k8s.pod.name'], undefined, 'a host process is no pod');
  });
});
