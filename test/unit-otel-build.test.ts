/**
 * The pinned builds of the Collector and Jaeger, checked without Go: the
 * Collector sources in tools/otelcol are what ocb generates from
 * otel-config/builder-config.yaml (each component imported and required at the
 * manifest's version), every Collector module is of one release, Jaeger is a
 * tool in a module of its own, and the tests' Jaeger config keeps to loopback
 * and off the ports the Collector under test uses.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ROOT } from './helpers/kernel.ts';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const read = (rel: string): string => readFileSync(`${ROOT}${rel}`, 'utf8');

/** The release: core modules v0.x and v1.x of it, contrib v0.x; k8sattributesprocessor, stable, v1.0.0 of the same day. */
const RELEASE = { core: 'v0.161.0', coreStable: 'v1.67.0', contrib: 'v0.161.0', k8sattributes: 'v1.0.0' };
const JAEGER = 'v1.75.0';

/** module -> version, from a go.mod's require lines (both blocks). */
function requires(goMod: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of goMod.matchAll(/^\s*(?:require\s+)?([\w.\-/]+\.[\w.\-/]+)\s+(v\S+)/gm)) out.set(m[1]!, m[2]!);
  return out;
}

const manifest = obj(parse(read('otel-config/builder-config.yaml')));
const goMod = read('tools/otelcol/go.mod');
const components = read('tools/otelcol/components.go');
const gomods = ['receivers', 'processors', 'exporters', 'extensions', 'providers'].flatMap((kind) =>
  list(manifest[kind]).map((m) => String(obj(m)['gomod']).split(' ') as [string, string]),
);

describe('the Collector build (otel-config/builder-config.yaml, tools/otelcol)', () => {
  it('requires and imports every component of the manifest at its version', () => {
    assert.ok(gomods.length >= 12);
    const required = requires(goMod);
    for (const [module, version] of gomods) {
      assert.equal(required.get(module), version, `tools/otelcol/go.mod requires ${module} ${version}`);
      if (!module.includes('/confmap/provider/')) assert.ok(components.includes(`"${module}"`), `components.go imports ${module}`);
    }
    assert.equal(String(obj(manifest['dist'])['output_path']), '../tools/otelcol');
  });

  it('is of one Collector release, every module of it pinned in go.sum', () => {
    const sum = read('tools/otelcol/go.sum');
    const collectorModules = [...requires(goMod)].filter(([m]) => m.startsWith('go.opentelemetry.io/collector') || m.includes('opentelemetry-collector-contrib'));
    assert.ok(collectorModules.length > 50, 'go.mod lists the whole module graph');
    for (const [module, version] of collectorModules) {
      const expected = module.endsWith('/k8sattributesprocessor')
        ? [RELEASE.k8sattributes]
        : module.includes('opentelemetry-collector-contrib') ? [RELEASE.contrib] : [RELEASE.core, RELEASE.coreStable];
      assert.ok(expected.includes(version), `${module} ${version}: not of the release (${expected.join(' or ')})`);
      assert.ok(sum.includes(`${module} ${version}/go.mod h1:`), `go.sum pins ${module} ${version}`);
    }
    assert.doesNotMatch(goMod, /^\s*replace\b/m, 'no replace directives');
  });
});

describe('the Jaeger build (tools/jaeger)', () => {
  it(`is Jaeger ${JAEGER} as a Go tool, in a module apart from the Collector's`, () => {
    const mod = read('tools/jaeger/go.mod');
    assert.match(mod, /^tool github\.com\/jaegertracing\/jaeger\/cmd\/jaeger$/m);
    assert.equal(requires(mod).get('github.com/jaegertracing/jaeger'), JAEGER);
    assert.match(read('tools/jaeger/go.sum'), new RegExp(`^github\\.com/jaegertracing/jaeger ${JAEGER} h1:`, 'm'));
    // Jaeger pins an older Collector: in one module it would be lifted to ours and fail to start.
    assert.notEqual(requires(mod).get('go.opentelemetry.io/collector/otelcol'), requires(goMod).get('go.opentelemetry.io/collector/otelcol'));
  });

  it("the tests' config: memory storage, loopback only, off 4317/4318, no spans or metrics of its own", () => {
    const config = obj(parse(read('test/fixtures/jaeger.yaml')));
    const endpoints: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (typeof v === 'string' && path.endsWith('.endpoint')) endpoints.push(v);
      for (const [k, child] of Object.entries(obj(v))) walk(child, `${path}.${k}`);
    };
    walk(config, '');
    assert.ok(endpoints.length >= 4);
    for (const e of endpoints) {
      assert.match(e, /^127\.0\.0\.1:/, `${e}: loopback only`);
      assert.doesNotMatch(e, /:(4317|4318)$/, `${e}: not the Collector's ports`);
    }
    const extensions = obj(config['extensions']);
    assert.equal(obj(extensions['jaeger_query'])['enable_tracing'], false);
    const backends = Object.values(obj(obj(extensions['jaeger_storage'])['backends'])).map(obj);
    assert.ok(backends.length === 1 && 'memory' in backends[0]!, 'one in-memory backend');
    assert.equal(obj(obj(obj(config['service'])['telemetry'])['metrics'])['level'], 'none');
  });
});
