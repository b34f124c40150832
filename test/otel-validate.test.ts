/**
 * Every Collector config under otel-config/, the DaemonSet's embedded one
 * included (with the variables its sidecar sets), passes `validate` of the
 * Collector built from otel-config/builder-config.yaml: strict decoding of every
 * setting, each component's own Validate (the exporterhelper's queue and batch
 * rules among them), pipelines built. And the build holds exactly what the
 * configs use (plus the tests' file exporter), under its current names only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_DIR, OTELCOL, otelSuite, validate } from './helpers/otel.ts';
import { ROOT } from './helpers/kernel.ts';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Components the tests need beyond what the configs use. */
const FOR_TESTS = ['exporters/file'];
const KINDS = ['receivers', 'processors', 'exporters', 'extensions', 'connectors'] as const;

interface Config {
  readonly where: string;
  readonly text: string;
  readonly env: Record<string, string>;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** The Collector configs: whole files, and those embedded in a ConfigMap with the env of the container that mounts it. */
function collectorConfigs(): Config[] {
  const out: Config[] = [];
  for (const path of yamlFiles(CONFIG_DIR)) {
    const text = readFileSync(path, 'utf8');
    const rel = relative(ROOT, path);
    const docs = parseAllDocuments(text).map((d) => obj(d.toJS()));
    const [only] = docs;
    if (docs.length === 1 && only && 'service' in only && 'receivers' in only) out.push({ where: rel, text, env: {} });
    const pods = docs.map((d) => obj(obj(obj(d['spec'])['template'])['spec'])).filter((s) => Object.keys(s).length > 0);
    const containers = pods.flatMap((p) => [...list(p['initContainers']), ...list(p['containers'])].map(obj));
    for (const map of docs.filter((d) => d['kind'] === 'ConfigMap')) {
      for (const [key, embedded] of Object.entries(obj(map['data']))) {
        if (!('service' in obj(parse(String(embedded))))) continue;
        // The container whose args name the mounted file: its variables, as given, or a stand-in for those the downward API fills.
        const user = containers.find((c) => list(c['args']).some((a) => String(a).includes(key)));
        assert.ok(user, `${rel}: a container runs the ConfigMap's ${key}`);
        const env = Object.fromEntries(list(user['env']).map(obj).map((e) => [String(e['name']), typeof e['value'] === 'string' ? e['value'] : 'test-value']));
        out.push({ where: `${rel} (ConfigMap ${String(obj(map['metadata'])['name'])}, ${key})`, text: String(embedded), env });
      }
    }
  }
  return out;
}

/** kind/type of every component a config defines. */
function componentTypes(text: string): string[] {
  const config = obj(parse(text));
  return KINDS.flatMap((kind) => Object.keys(obj(config[kind])).map((id) => `${kind}/${id.split('/')[0] ?? ''}`));
}

describe('otel-config: the real Collector validates every config', otelSuite(), () => {
  const dir = mkdtempSync(join(tmpdir(), 'tt-otel-validate-'));
  after(() => { rmSync(dir, { recursive: true, force: true }); });
  const configs = collectorConfigs();

  it('finds the five Collector configs, the embedded one included', () => {
    assert.equal(configs.length, 5, configs.map((c) => c.where).join(', '));
    assert.ok(configs.some((c) => c.where.includes('ConfigMap')));
  });

  for (const [i, config] of configs.entries()) {
    it(`${config.where} passes validate`, () => {
      const file = join(dir, `config-${i}.yaml`);
      writeFileSync(file, config.text);
      const { code, output } = validate(file, config.env);
      assert.equal(code, 0, output);
    });
  }

  it('refuses a setting that does not exist (validate decodes strictly)', () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, readFileSync(join(CONFIG_DIR, 'collector-gateway.yaml'), 'utf8').replace('check_interval:', 'check_intervall:'));
    const { code, output } = validate(file);
    assert.notEqual(code, 0);
    assert.match(output, /check_intervall/);
  });

  it('holds exactly the components the configs use, plus the tests\' own, by their current names', () => {
    const r = spawnSync(OTELCOL, ['components'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const listed = obj(parse(r.stdout));
    // `components` lists each component under its current name; deprecated aliases (otlp for
    // otlp_grpc, k8sattributes for k8s_attributes) pass validate but are not listed.
    const built = KINDS.flatMap((kind) => list(listed[kind]).map((c) => `${kind}/${String(obj(c)['name'])}`)).sort();
    const used = new Set(configs.flatMap((c) => componentTypes(c.text)));
    for (const type of used) assert.ok(built.includes(type), `${type} is used by a config, but is not a current name in the build (${built.join(', ')})`);
    assert.deepEqual(built, [...new Set([...used, ...FOR_TESTS])].sort(), 'builder-config.yaml names what the configs and tests use, nothing else');
    const providers = list(listed['providers']).map((p) => String(obj(p)['scheme'])).sort();
    assert.deepEqual(providers, ['env', 'file', 'yaml'], 'env and file for --config, yaml for --set');
  });
});
