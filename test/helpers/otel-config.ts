/**
 * Every YAML file under otel-config/, parsed once and sorted by kind for the
 * tests that check them (unit-otel-config, unit-daemonset): Collector configs
 * (also those embedded in a ConfigMap), Kubernetes manifests, Grafana
 * provisioning, the builder manifest. A file of another kind fails the load.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CONFIG_DIR = join(ROOT, 'otel-config');

/**
 * Container-level attributes: extracting at least one is what makes k8s_attributes index pods by
 * container id (internal/kube/client.go, needContainerAttributes; README: "To use container.id in
 * pod association, at least one container attribute must be included").
 */
export const CONTAINER_METADATA: readonly string[] = [
  'k8s.container.name', 'container.id', 'container.image.name', 'container.image.tag', 'container.image.tags',
  'container.image.repo_digests', 'service.version', 'service.instance.id',
];

/**
 * The identity tcptracer puts on every record and span of a container process, as attributes
 * (src/otlp/logs/mapping.ts): what the Collector associates pods by, in this order (container.id
 * names the container too; k8s.pod.uid is there also when the container's layout is not parsed).
 */
export const TRACER_IDENTITY: readonly string[] = ['container.id', 'k8s.pod.uid'];

export type Json = Record<string, unknown>;
export const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
export const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string => (typeof v === 'string' ? v : '');
export const num = (v: unknown): number => (typeof v === 'number' ? v : Number.NaN);

export interface CollectorConfig {
  readonly where: string;
  readonly config: Json;
}

export interface Pipeline {
  readonly name: string;
  readonly signal: string;
  readonly receivers: string[];
  readonly processors: string[];
  readonly exporters: string[];
}

export function pipelines(config: Json): Pipeline[] {
  return Object.entries(obj(obj(config['service'])['pipelines'])).map(([name, p]) => ({
    name,
    signal: name.split('/')[0] ?? '',
    receivers: list(obj(p)['receivers']).map(str),
    processors: list(obj(p)['processors']).map(str),
    exporters: list(obj(p)['exporters']).map(str),
  }));
}

export const typeOf = (id: string): string => id.split('/')[0] ?? '';

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

// ---- load everything ----

export const files = yamlFiles(CONFIG_DIR).map((path) => ({ path, rel: relative(ROOT, path), text: readFileSync(path, 'utf8') }));
export const collectors: CollectorConfig[] = [];
export const manifests: Json[] = [];
export const grafana: Json[] = [];
export const builderManifests: Json[] = [];
for (const file of files) {
  const docs = parseAllDocuments(file.text);
  for (const doc of docs) {
    assert.deepEqual(doc.errors, [], `${file.rel}: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  const values = docs.map((d) => obj(d.toJS())).filter((v) => Object.keys(v).length > 0);
  for (const value of values) {
    if ('service' in value && 'exporters' in value) collectors.push({ where: file.rel, config: value });
    else if (typeof value['kind'] === 'string' && typeof value['apiVersion'] === 'string') {
      manifests.push(value);
      if (value['kind'] === 'ConfigMap') {
        for (const [key, text] of Object.entries(obj(value['data']))) {
          const embedded = obj(parse(str(text)));
          if ('service' in embedded) collectors.push({ where: `${file.rel} (ConfigMap ${str(obj(value['metadata'])['name'])}, ${key})`, config: embedded });
        }
      }
    } else if (Array.isArray(value['datasources'])) grafana.push(value);
    else if ('dist' in value) builderManifests.push(value); // ocb's manifest: test/unit-otel-build.test.ts
    else assert.fail(`${file.rel}: neither a Collector config, a Kubernetes manifest nor Grafana provisioning: the test does not check it`);
  }
}
