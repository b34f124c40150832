/**
 * Every YAML file under otel-config/, parsed and checked for what the
 * Collector's own `validate` cannot tell (that one runs in
 * test/otel-validate.test.ts: names, settings, queue rules, pipeline
 * references): every defined component is used, memory_limiter comes first,
 * signals go where their backend takes them, k8s_attributes gets the tracer's
 * identity as it needs it, and a full batch fits what the next hop accepts,
 * computed from the real size of tcptracer's records
 * (test/helpers/otlp-size.ts). The Grafana data sources' links are checked
 * against each other and the Collector configs; the DaemonSet has its own
 * file (unit-daemonset.test.ts). Loading: test/helpers/otel-config.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_EXPORT_BATCH_SIZE } from '../src/defaults.ts';
import { connectionSpanSize, logRecordSize } from './helpers/otlp-size.ts';

import { builderManifests, CONTAINER_METADATA, collectors, files, grafana, list, manifests, num, obj, pipelines, str, TRACER_IDENTITY, typeOf } from './helpers/otel-config.ts';

/** A stock gRPC receiver's limit per request (grpc-go's default; the otlp receiver's max_recv_msg_size_mib unset). */
const RECEIVER_LIMIT_BYTES = 4 * 1024 * 1024;
/** What a full batch may take of that: half, whatever the records weigh. */
const BATCH_BUDGET_BYTES = RECEIVER_LIMIT_BYTES / 2;

type ComponentKind = 'receivers' | 'processors' | 'exporters' | 'extensions' | 'connectors';

const logSize = logRecordSize();
const spanSize = connectionSpanSize();

describe('otel-config: every YAML file', () => {
  it('parses, and is one of the kinds this test checks', () => {
    assert.ok(files.length >= 7, files.map((f) => f.rel).join(', '));
    assert.ok(collectors.length >= 5);
    assert.ok(manifests.length >= 6);
    assert.equal(grafana.length, 1);
    assert.equal(builderManifests.length, 1);
  });

  it('does not point users at the removed loki exporter', () => {
    for (const file of files) {
      assert.doesNotMatch(file.text, /\bloki\b`?\s+exporter/i, `${file.rel} mentions the loki exporter`);
    }
  });
});

describe('otel-config: Collector configs', () => {
  for (const { where, config } of collectors) {
    describe(where, () => {
      it('uses every component it defines (validate accepts unused ones)', () => {
        const ps = pipelines(config);
        assert.ok(ps.length > 0);
        const defined = (kind: ComponentKind): Set<string> => new Set(Object.keys(obj(config[kind])));
        const used = new Set(ps.flatMap((p) => [...p.receivers, ...p.processors, ...p.exporters]));
        for (const kind of ['receivers', 'processors', 'exporters', 'connectors'] as const) {
          for (const id of defined(kind)) assert.ok(used.has(id), `${kind}.${id} is defined but no pipeline uses it`);
        }
        const extensions = list(obj(config['service'])['extensions']).map(str);
        for (const id of defined('extensions')) assert.ok(extensions.includes(id), `extensions.${id} is defined but not enabled in service.extensions`);
      });

      it('runs memory_limiter first wherever it is used', () => {
        for (const p of pipelines(config)) {
          const at = p.processors.findIndex((x) => typeOf(x) === 'memory_limiter');
          assert.ok(at <= 0, `pipeline ${p.name}: memory_limiter must come first`);
        }
      });

      it(`sends batches that fit a stock receiver with a margin (at most ${BATCH_BUDGET_BYTES} bytes)`, (t) => {
        const ps = pipelines(config);
        for (const [id, settings] of Object.entries(obj(config['exporters']))) {
          const signals = ps.filter((p) => p.exporters.includes(id)).map((p) => p.signal);
          const size = signals.includes('traces') && spanSize.perItem > logSize.perItem ? spanSize : logSize;
          const queue = obj(obj(settings)['sending_queue']);
          const batch = obj(queue['batch']);
          if (!('batch' in queue)) {
            // No batching: requests go on as they arrived; tcptracer's are its export batch,
            // at worst one resource per item (spans of distinct processes).
            const request = DEFAULT_EXPORT_BATCH_SIZE * (size.perItem + size.perRequest);
            assert.ok(request <= BATCH_BUDGET_BYTES, `${id}: a tracer request of ${request} bytes`);
            continue;
          }
          const sizer = str(batch['sizer']) || str(queue['sizer']) || 'requests';
          const max = num(batch['max_size']);
          const full = sizer === 'bytes' ? max : max * size.perItem + size.perRequest;
          t.diagnostic(`${id}: a full batch is ${full} bytes (${sizer}; ~${Math.floor(full / size.perItem)} of the largest items, ${size.perItem} bytes each)`);
          assert.ok(full <= BATCH_BUDGET_BYTES, `${id}: a full batch is ${full} bytes, over the budget of ${BATCH_BUDGET_BYTES}`);
          assert.ok(full >= 100 * size.perItem, `${id}: a full batch holds fewer than 100 items`);
        }
      });

      it("adds Kubernetes metadata only from the tracer's container.id, then k8s.pod.uid, moved to the resource by groupbyattrs first", () => {
        const processors = obj(config['processors']);
        for (const p of pipelines(config)) {
          const at = p.processors.findIndex((x) => typeOf(x) === 'k8s_attributes');
          if (at < 0) continue;
          const k8s = obj(processors[p.processors[at] ?? '']);
          // pod_association.go, extractPodID: the first association whose attributes are all present decides.
          const associations = list(k8s['pod_association']).map((a) => list(obj(a)['sources']).map((x) => `${str(obj(x)['from'])}:${str(obj(x)['name'])}`));
          assert.deepEqual(
            associations,
            TRACER_IDENTITY.map((name) => [`resource_attribute:${name}`]),
            `pipeline ${p.name}: one association per identity attribute, container.id first (a single association listing both would need both)`,
          );
          // k8s_attributes reads resource attributes only; the tracer sends these as record/span attributes.
          const grouped = p.processors
            .slice(0, at)
            .filter((x) => typeOf(x) === 'groupbyattrs')
            .flatMap((x) => list(obj(processors[x])['keys']).map(str));
          for (const name of TRACER_IDENTITY) assert.ok(grouped.includes(name), `pipeline ${p.name}: groupbyattrs with key ${name} must come before ${p.processors[at] ?? ''}`);
          const metadata = list(obj(k8s['extract'])['metadata']).map(str);
          assert.ok(
            metadata.some((m) => CONTAINER_METADATA.includes(m)),
            `pipeline ${p.name}: without a container attribute in extract.metadata, pods are not indexed by container id and the container.id association never matches`,
          );
        }
      });

      it('sends each signal only where its backend takes it, Loki-bound logs with their event name', () => {
        const ps = pipelines(config);
        const exporters = obj(config['exporters']);
        const processors = obj(config['processors']);
        for (const [id, settings] of Object.entries(exporters)) {
          const endpoint = str(obj(settings)['endpoint']);
          const signals = new Set(ps.filter((p) => p.exporters.includes(id)).map((p) => p.signal));
          if (/jaeger/i.test(id) || /jaeger/i.test(endpoint)) {
            // Jaeger v2 ingests OTLP traces only.
            assert.deepEqual([...signals], ['traces'], `${id} goes to Jaeger: traces only`);
            assert.match(endpoint, /:4317$/, `${id}: Jaeger's OTLP/gRPC port`);
          }
          if (/\/otlp\/?$/.test(endpoint) || /loki/i.test(id)) {
            assert.equal(typeOf(id), 'otlp_http', `${id}: Loki ingests OTLP over HTTP at /otlp`);
            assert.deepEqual([...signals], ['logs'], `${id} goes to Loki: logs only`);
            for (const p of ps.filter((x) => x.exporters.includes(id))) {
              const copies = p.processors.some((x) =>
                list(obj(processors[x])['log_statements']).some((group) =>
                  list(obj(group)['statements']).some((s) => /set\(log\.attributes\["event\.name"\],\s*log\.event_name\)/.test(str(s))),
                ),
              );
              assert.ok(copies, `pipeline ${p.name}: Loki drops EventName; a transform must set attributes["event.name"] from log.event_name`);
            }
          }
        }
        for (const [id, settings] of Object.entries(processors)) {
          if (typeOf(id) !== 'transform') continue;
          const users = ps.filter((p) => p.processors.includes(id));
          if (list(obj(settings)['log_statements']).length > 0 && list(obj(settings)['trace_statements']).length === 0) {
            assert.ok(users.every((p) => p.signal === 'logs'), `${id} has only log statements`);
          }
        }
      });
    });
  }

  it("tcptracer's own export requests fit a stock receiver", (t) => {
    const logs = DEFAULT_EXPORT_BATCH_SIZE * logSize.perItem + logSize.perRequest;
    const spans = DEFAULT_EXPORT_BATCH_SIZE * (spanSize.perItem + spanSize.perRequest);
    t.diagnostic(`largest log record ${logSize.perItem} bytes (+${logSize.perRequest} per request), largest span ${spanSize.perItem} (+${spanSize.perRequest} per process resource)`);
    t.diagnostic(`a full export request: logs ${logs} bytes, spans ${spans} bytes at worst (one process resource per span)`);
    assert.ok(logs <= BATCH_BUDGET_BYTES && spans <= BATCH_BUDGET_BYTES);
  });
});

// ---- Grafana ----

describe('otel-config/grafana/datasources.yaml', () => {
  const sources = list(grafana[0]?.['datasources']).map(obj);
  const loki = sources.find((s) => s['type'] === 'loki') ?? {};
  const jaeger = sources.find((s) => s['type'] === 'jaeger') ?? {};
  const exporterEndpoint = (pattern: RegExp): string[] =>
    collectors.flatMap((c) => Object.entries(obj(c.config['exporters'])).filter(([id]) => pattern.test(id)).map(([, s]) => str(obj(s)['endpoint'])));

  it('links a Loki record to its trace in Jaeger through the trace_id structured metadata', () => {
    const fields = list(obj(loki['jsonData'])['derivedFields']).map(obj);
    const link = fields.find((f) => f['matcherType'] === 'label' && f['matcherRegex'] === 'trace_id');
    assert.ok(link, 'a derived field matching the trace_id field by name (matcherType: label)');
    assert.equal(link['datasourceUid'], jaeger['uid']);
    assert.equal(link['url'], '$${__value.raw}', 'the field value itself, $ escaped as $$ for provisioning');
  });

  it("links a Jaeger span back to its connection's records in Loki", () => {
    const back = obj(obj(jaeger['jsonData'])['tracesToLogsV2']);
    assert.equal(back['datasourceUid'], loki['uid']);
    assert.equal(back['customQuery'], true);
    assert.match(str(back['query']), /\| trace_id="\$\$\{__span\.traceId\}"/);
    assert.match(str(back['query']), /service_name="tcptracer"/, "the tracer's stream (its default service.name)");
  });

  it('points at the Loki and Jaeger the Collector config exports to', () => {
    const host = (url: string): string => new URL(url.includes('://') ? url : `http://${url}`).hostname;
    assert.ok(exporterEndpoint(/jaeger/).some((e) => host(e) === host(str(jaeger['url']))));
    assert.ok(exporterEndpoint(/loki/).some((e) => host(e) === host(str(loki['url']))));
    assert.match(str(jaeger['url']), /:16686$/, "Jaeger's query port (the Collector sends to 4317)");
  });
});
