/**
 * The Dockerfile against the repository: what it copies exists or is built,
 * its Node major matches the project's, and its entrypoint is what tsc emits.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly stage: number;
}

/** Instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    pending += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line;
    if (line.endsWith('\\')) continue;
    const [op = '', ...rest] = pending.trim().split(/\s+/);
    pending = '';
    if (op.toUpperCase() === 'FROM') stage++;
    out.push({ op: op.toUpperCase(), args: rest.join(' '), stage });
  }
  return out;
}

interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  readonly stage: number;
}

function copies(instructions: Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const words = i.args.split(' ');
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      return { from, sources: paths.slice(0, -1), stage: i.stage };
    });
}

const { compilerOptions } = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string } };

/** What `tsc -p tsconfig.json` emits for a source file. */
function tscOutput(source: string): string {
  const relative = posix.relative(compilerOptions.rootDir, source);
  return posix.join(compilerOptions.outDir, relative.replace(/\.ts$/, '.js'));
}

/** Files node-gyp writes to build/Release: each addon target's .node and each action output. */
function nodeGypOutputs(): Set<string> {
  const gyp = JSON.parse(read('binding.gyp').replace(/^\s*#.*$/gm, '')) as {
    targets: { target_name: string; type?: string; actions?: { outputs: string[] }[] }[];
  };
  const outputs = new Set<string>();
  for (const target of gyp.targets) {
    if (target.type === undefined) outputs.add(`${target.target_name}.node`);
    for (const action of target.actions ?? []) {
      for (const output of action.outputs) outputs.add(output.replace('<(PRODUCT_DIR)/', ''));
    }
  }
  return outputs;
}

const instructions = parseDockerfile(read('Dockerfile'));
const froms = instructions.filter((i) => i.op === 'FROM');
const buildStage = froms[0]?.args.split(' ').at(-1) ?? '';

describe('Dockerfile', () => {
  it('has a named build stage and a runtime stage on the Node major of package.json', () => {
    const pkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string> };
    const major = /(\d+)/.exec(pkg.devDependencies['node'] ?? '')?.[1];
    assert.ok(major, 'package.json devDependencies.node');
    assert.equal(froms.length, 2);
    assert.match(froms[0]?.args ?? '', /\sAS\s+\w+$/i);
    for (const from of froms) {
      const image = from.args.split(' ')[0] ?? '';
      assert.match(image, new RegExp(`^node:${major}-`), `${image} should be node:${major}-*`);
    }
    assert.match(froms[1]?.args ?? '', /-slim$/);
  });

  it('copies into the build stage only paths that exist in the repository and are not ignored', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    const sources = copies(instructions).filter((c) => c.from === undefined).flatMap((c) => c.sources);
    assert.ok(sources.length > 0);
    for (const source of sources) {
      assert.ok(existsSync(join(ROOT, source)), `${source} does not exist`);
      assert.ok(!ignored.includes(source.replace(/\/$/, '')), `${source} is excluded by .dockerignore`);
    }
  });

  it('copies from the build stage only what the build produces', () => {
    const fromContext = new Set(copies(instructions).filter((c) => c.from === undefined).flatMap((c) => c.sources));
    const gyp = nodeGypOutputs();
    const built = copies(instructions).filter((c) => c.from !== undefined);
    assert.ok(built.length > 0);
    for (const copy of built) {
      assert.equal(copy.from, buildStage);
      for (const source of copy.sources) {
        const path = source.replace(/^\/app\//, '');
        const ok =
          fromContext.has(path) ||
          path === 'node_modules/' ||
          path === `${compilerOptions.outDir}/` ||
          (path.startsWith('build/Release/') && gyp.has(path.slice('build/Release/'.length)));
        assert.ok(ok, `${source} is neither copied in, installed, nor built`);
      }
    }
    const runtimeFiles = built.flatMap((c) => c.sources);
    assert.ok(runtimeFiles.includes('/app/build/Release/tcptracer.bpf.o'));
    assert.ok(runtimeFiles.includes('/app/build/Release/tcptracer_loader.node'));
  });

  it('runs what tsc emits for src/cli.ts, in OTLP service mode', () => {
    const entry = instructions.find((i) => i.op === 'ENTRYPOINT');
    assert.ok(entry);
    const argv = JSON.parse(entry.args) as string[];
    assert.deepEqual(argv, ['node', tscOutput('src/cli.ts'), '--otlp', '-q']);
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    assert.equal(pkg.bin['tcptracer'], tscOutput('src/cli.ts'));
  });

  it('builds with the project commands and keeps compilers out of the runtime stage', () => {
    const runs = instructions.filter((i) => i.op === 'RUN');
    const build = runs.filter((r) => r.stage === 0).map((r) => r.args).join('\n');
    assert.match(build, /npm ci/);
    assert.match(build, /npm run build/);
    const runtime = runs.filter((r) => r.stage === 1).map((r) => r.args).join('\n');
    assert.doesNotMatch(runtime, /clang|g\+\+|-dev\b/);
    assert.match(runtime, /libbpf1/);
  });
});
