/**
 * The Dockerfile, built the way Docker would build it, without Docker: each stage
 * in a scratch directory holding only what it COPYs (from the build context as
 * .dockerignore filters it, or from the previous stage's tree), its npm commands
 * run there for real, its apt-get installs checked against this Debian release
 * instead of run, and the runtime stage's entrypoint started with --help.
 *
 * Stand-ins, since there is no image here: the project's pinned Node binary
 * (node_modules/node, the same major as the images, checked below) plays the
 * image's `node`, the host's clang/libbpf-dev/... play the build stage's apt
 * packages (which must therefore be installed here), and the host's Node headers
 * play /usr/local/include/node for node-gyp (the loader is Node-API only, so any
 * Node's headers give the same addon). npm runs with its cache preferred over the
 * network (Docker starts from an empty cache: the packages are the same).
 *
 * TCPTRACER_DOCKER_CONTEXT=DIR builds from DIR instead of the working tree
 * (e.g. a `git archive` of a commit, while the tree is mid-edit).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { NODE_FLAGS } from '../src/heap.ts';
import { parseCli } from '../src/options.ts';
import { lookupUser } from '../src/privileges.ts';
import { execForm, listFiles, parseDockerfile, scratchBuild, TRACER_START_CAPABILITIES, type BuiltStage } from './helpers/dockerfile.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

const DOCKERFILE = read('Dockerfile');
const stages = parseDockerfile(DOCKERFILE);
const pkg = JSON.parse(read('package.json')) as { version: string; bin: Record<string, string>; devDependencies: Record<string, string> };
const nodeMajor = /(\d+)/.exec(pkg.devDependencies['node'] ?? '')?.[1];
const { compilerOptions } = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string } };

/** What `tsc` emits for a source file. */
function tscOutput(source: string): string {
  const relative = posix.relative(compilerOptions.rootDir, source);
  return posix.join(compilerOptions.outDir, relative.replace(/\.ts$/, '.js'));
}

function sh(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const entrypoint = (() => {
  const last = stages.at(-1);
  const entry = last?.instructions.find((i) => i.op === 'ENTRYPOINT');
  return entry ? execForm(entry) : [];
})();

describe('Dockerfile', () => {
  it('has a named build stage and a runtime stage on the Node major of package.json', () => {
    assert.ok(nodeMajor, 'package.json devDependencies.node');
    assert.equal(stages.length, 2);
    assert.ok(stages[0]?.name, 'the build stage is named');
    for (const stage of stages) {
      assert.match(stage.image, new RegExp(`^node:${nodeMajor}-`), `${stage.image} should be node:${nodeMajor}-*`);
    }
    assert.match(stages[1]?.image ?? '', /-slim$/);
  });

  it('runs what tsc emits for src/cli.ts, in OTLP service mode, as the package bin does', () => {
    assert.deepEqual(entrypoint, ['node', ...NODE_FLAGS, tscOutput('src/cli.ts'), '--otlp', '-q']);
    assert.equal(pkg.bin['tcptracer'], tscOutput('src/cli.ts'));
    assert.ok(!stages.at(-1)?.instructions.some((i) => i.op === 'CMD'), 'no CMD: docker run arguments are appended to the entrypoint');
  });

  it('builds with the project commands and keeps compilers out of the runtime stage', () => {
    const runs = (i: number): string =>
      (stages[i]?.instructions ?? []).filter((x) => x.op === 'RUN').map((x) => x.args).join('\n');
    assert.match(runs(0), /npm ci/);
    assert.match(runs(0), /npm run build/);
    assert.doesNotMatch(runs(1), /clang|g\+\+|-dev\b|npm /);
    assert.match(runs(1), /libbpf1/);
  });
});

// ---- how the image is run ----

/** The header's `docker run` example, continuation lines joined. */
const dockerRun = (() => {
  const header = DOCKERFILE.slice(0, DOCKERFILE.search(/^FROM /m));
  const lines = header.split('\n').map((l) => l.replace(/^#\s?/, ''));
  const start = lines.findIndex((l) => /^\s*docker run /.test(l));
  let command = '';
  for (let i = start; i >= 0 && i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    command += ` ${line.replace(/\\$/, '')}`;
    if (!line.endsWith('\\')) break;
  }
  return { header, command: command.trim() };
})();

/** The tracer container of otel-config/k8s/daemonset.yaml. */
function daemonSetTracer(): Record<string, unknown> {
  for (const doc of parseAllDocuments(read('otel-config/k8s/daemonset.yaml'))) {
    const value = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { image?: string }[] } } } } | null;
    if (value?.kind !== 'DaemonSet') continue;
    const tracer = value.spec?.template?.spec?.containers?.find((c) => /tcptracer-otel/.test(c.image ?? ''));
    if (tracer) return tracer;
  }
  throw new Error('no tracer container in otel-config/k8s/daemonset.yaml');
}

describe('Dockerfile: the documented docker run', () => {
  const { header, command } = dockerRun;
  const flag = (re: RegExp): string[] => [...command.matchAll(re)].map((m) => m[1] ?? '');

  it("grants exactly the capabilities needed at start, the DaemonSet's, with everything else dropped", () => {
    assert.ok(command.startsWith('docker run '), command);
    assert.deepEqual(flag(/--cap-drop[ =](\S+)/g), ['ALL']);
    const added = flag(/--cap-add[ =](\S+)/g).sort();
    assert.deepEqual(added, [...TRACER_START_CAPABILITIES].sort());
    const security = (daemonSetTracer()['securityContext'] ?? {}) as { capabilities?: { add?: string[] } };
    assert.deepEqual([...(security.capabilities?.add ?? [])].sort(), added, 'the DaemonSet grants the same');
    assert.doesNotMatch(command, /--privileged|SYS_ADMIN|--user[ =]/, 'not privileged, no SYS_ADMIN, started as root (the tracer drops to nobody)');
    for (const cap of TRACER_START_CAPABILITIES) assert.match(header, new RegExp(`^#\\s+(\\S+, )?${cap}\\b`, 'm'), `the header says why ${cap} is needed`);
  });

  it('runs with host PIDs, a read-only root filesystem, and the host paths the tracer reads', () => {
    assert.match(command, /--pid=host\b/);
    assert.match(command, /--read-only\b/);
    assert.match(command, /-v \/sys\/kernel\/btf:\/sys\/kernel\/btf:ro\b/);
    assert.match(command, /-v \/sys\/kernel\/tracing:\/sys\/kernel\/tracing:ro\b/);
    const cgroup = /-v \/sys\/fs\/cgroup:(\S+):ro\b/.exec(command)?.[1];
    assert.ok(cgroup, "the host's cgroup v2 tree, read-only");
    assert.notEqual(cgroup, '/sys/fs/cgroup', "not over the container's own cgroup mount");
    assert.match(command, new RegExp(`-e TCPTRACER_CGROUP_ROOT=${cgroup.replace(/[/.]/g, '\\$&')}(\\s|$)`), 'TCPTRACER_CGROUP_ROOT points at that mount');
  });

  it('starts as root (no USER) and says that the tracer drops to nobody after attaching', () => {
    assert.doesNotMatch(DOCKERFILE, /^\s*USER\b/m, 'no USER: the capabilities are effective only for uid 0');
    assert.equal(parseCli([]).user, 'nobody', "the tracer's default --user");
    assert.match(header, /nobody/);
    assert.match(header, /uid 65534/);
  });
});

// ---- the scratch build ----

const HOST_NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node');
const NPM_CLI = '/usr/lib/node_modules/npm/bin/npm-cli.js';
const hostRelease = /^VERSION_CODENAME=(\S+)$/m.exec(existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '')?.[1];

/** A directory with include/node/node_api.h that can stand for the image's /usr/local. */
function hostNodePrefix(): string | undefined {
  return [dirname(dirname(process.execPath)), '/usr/local', '/usr'].find((p) => existsSync(join(p, 'include', 'node', 'node_api.h')));
}

function aptPackages(i: number): string[] {
  return (stages[i]?.instructions ?? [])
    .filter((x) => x.op === 'RUN')
    .flatMap((x) => x.args.split('&&'))
    .map((p) => p.trim().split(/\s+/))
    .filter((w) => w[0] === 'apt-get' && w[1] === 'install')
    .flatMap((w) => w.slice(2).filter((x) => !x.startsWith('-')));
}

function installed(name: string): boolean {
  return sh('dpkg-query', ['-W', '-f=${Status}', name]).stdout === 'install ok installed';
}

function scratchSkipReason(): string | undefined {
  if (!existsSync(HOST_NODE)) return `the project's Node (${HOST_NODE}) is not installed: npm ci`;
  if (sh(HOST_NODE, ['--version']).stdout.trim().split('.')[0] !== `v${nodeMajor}`) return `node_modules/node is not Node ${nodeMajor}`;
  if (!existsSync(NPM_CLI)) return `no npm at ${NPM_CLI}`;
  if (sh('dpkg-query', ['--version']).status !== 0) return 'not a Debian system: the apt packages cannot be checked';
  const missing = aptPackages(0).filter((p) => !installed(p));
  if (missing.length > 0) return `build-stage packages not installed here: ${missing.join(' ')} (./scripts/setup.sh)`;
  if (!hostNodePrefix()) return 'no Node headers (include/node/node_api.h) to stand for the image\'s';
  return undefined;
}

/** Debian packages that own the shared libraries `file` loads (ldd's resolution here), by library path. */
function libraryPackages(file: string): Map<string, string> {
  const libs = sh('ldd', [file])
    .stdout.split('\n')
    .map((line) => /=>\s+(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1])
    .filter((lib): lib is string => lib !== undefined);
  // usrmerge: dpkg may know a library under /lib or /usr/lib, by its name or its target.
  const variants = (lib: string): string[] =>
    [lib, realpathSync(lib)].flatMap((p) => [p, p.replace(/^\/lib\//, '/usr/lib/'), p.replace(/^\/usr\/lib\//, '/lib/')]);
  const owner = new Map<string, string>();
  for (const line of sh('dpkg', ['-S', ...new Set(libs.flatMap(variants))]).stdout.split('\n')) {
    const m = /^([^:\s]+)(?::\S+)?: (\/.+)$/.exec(line);
    if (m) owner.set(m[2] ?? '', m[1] ?? '');
  }
  const out = new Map<string, string>();
  for (const lib of libs) {
    const pkgName = variants(lib).map((v) => owner.get(v)).find((o) => o !== undefined);
    assert.ok(pkgName, `${file}: no Debian package owns ${lib}`);
    out.set(lib, pkgName);
  }
  return out;
}

const skipReason = scratchSkipReason();
if (skipReason && process.env['CI'] === 'true') {
  it('the scratch Docker build must run under CI', () => {
    throw new Error(`${skipReason} (CI=true: a skipped build is a failure)`);
  });
}

describe('Dockerfile built stage by stage in scratch directories', { skip: skipReason ?? false }, () => {
  const context = process.env['TCPTRACER_DOCKER_CONTEXT'] ?? ROOT;
  let scratch = '';
  let built: BuiltStage[] = [];
  const runtime = (): BuiltStage => built.at(-1)!;
  const runtimeApp = (...p: string[]): string => join(runtime().root, runtime().workdir, ...p);

  const requireBuilt = (): void => {
    assert.equal(built.length, stages.length, 'the scratch build failed (first test)');
  };

  it('builds every stage in order, as Docker would', () => {
    scratch = mkdtempSync(join(tmpdir(), 'tcptracer-docker-'));
    shims(join(scratch, 'bin'));
    built = scratchBuild(DOCKERFILE, readFileSync(join(context, '.dockerignore'), 'utf8'), {
      context,
      scratch,
      // `node` and `npm` of the image's major: npm's own CLI run by the project's Node.
      binPath: join(scratch, 'bin'),
      imagePaths: { '/usr/local': hostNodePrefix()! },
      runEnv: { npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
      exec: (command, cwd, env) => {
        const r = spawnSync('sh', ['-c', command], { cwd, env, encoding: 'utf8', timeout: 240_000 });
        const tail = (text: string): string => text.trim().split('\n').filter((l) => !/^gyp info /.test(l)).slice(-15).join('\n');
        assert.equal(r.status, 0, `RUN ${command} (in ${cwd}) failed:\n${tail(r.stdout)}\n${tail(r.stderr)}`);
      },
    });
  });

  after(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  it('build stage: COPY brings in only what it names, and .dockerignore keeps secrets and local builds out', () => {
    requireBuilt();
    const copied = built[0]!.copied.map((f) => posix.relative(built[0]!.workdir.slice(1), f));
    assert.ok(copied.includes('package-lock.json'));
    for (const file of copied) {
      assert.doesNotMatch(file, /(^|\/)(node_modules|dist|build|\.git)\/|\.(pem|key)$|(^|\/)\.env$/, `${file} reached the build stage`);
    }
  });

  it('build stage: npm ci and npm run build succeed with only the copied files, and produce what the runtime stage copies', () => {
    requireBuilt();
    const app = (...p: string[]): string => join(built[0]!.root, built[0]!.workdir, ...p);
    assert.ok(existsSync(app(tscOutput('src/cli.ts'))));
    assert.ok(existsSync(app('build', 'Release', 'tcptracer_loader.node')));
    assert.ok(existsSync(app('build', 'Release', 'tcptracer.bpf.o')));
    assert.ok(!existsSync(app('node_modules', 'typescript')), 'npm prune --omit=dev removed the devDependencies');
    const ran = built[0]!.steps.filter((s) => s.kind === 'run').map((s) => s.command);
    assert.deepEqual(ran, ['npm ci', 'npm run build', 'npm prune --omit=dev']);
  });

  it(`apt-get installs name packages of this Debian release (${hostRelease ?? '?'}), the images' base`, (t) => {
    requireBuilt();
    for (const stage of stages) {
      const release = /-(\w+?)(?:-slim)?$/.exec(stage.image)?.[1];
      if (release !== hostRelease) {
        t.diagnostic(`${stage.image} is ${release ?? '?'}, this host ${hostRelease ?? '?'}: package names not checked`);
        continue;
      }
      const names = aptPackages(stage.index);
      if (sh('apt-cache', ['show', '--no-all-versions', ...names]).status === 0) continue;
      for (const name of names) {
        assert.equal(sh('apt-cache', ['show', '--no-all-versions', name]).status, 0, `${stage.image}: no Debian package ${name}`);
      }
    }
  });

  it("runtime stage: its base image's /etc/passwd has nobody (uid 65534), the tracer's default --user", (t) => {
    requireBuilt();
    const stage = runtime().stage;
    const release = /-(\w+?)(?:-slim)?$/.exec(stage.image)?.[1];
    // Debian's /etc/passwd is made from base-passwd's master copy; the package is Essential, so every
    // Debian image (slim ones too) has it. Checked here on this host's copy when it is the same release.
    const master = '/usr/share/base-passwd/passwd.master';
    if (release !== hostRelease || !existsSync(master)) {
      t.skip(`${stage.image} is ${release ?? '?'}, this host ${hostRelease ?? '?'} (or no ${master}): not checked`);
      return;
    }
    assert.equal(sh('dpkg-query', ['-W', '-f=${Essential}', 'base-passwd']).stdout, 'yes', 'base-passwd is Essential: in every Debian image');
    const nobody = lookupUser(parseCli([]).user, readFileSync(master, 'utf8'));
    assert.deepEqual({ uid: nobody.uid, gid: nobody.gid }, { uid: 65534, gid: 65534 });
  });

  it('runtime stage: every shared library its native addons load comes from a package it installs (or Node itself needs)', () => {
    requireBuilt();
    const listed = aptPackages(runtime().stage.index);
    const allowed = new Set(listed);
    for (const name of listed) {
      for (const dep of sh('dpkg-query', ['-W', '-f=${Depends}', name]).stdout.split(',')) allowed.add(dep.trim().split(/[\s:]/)[0] ?? '');
    }
    for (const owner of libraryPackages(HOST_NODE).values()) allowed.add(owner);
    const addons = listFiles(runtimeApp()).filter(
      (f) => f.endsWith('.node') && !f.includes('/obj.target/') && (!f.includes('/prebuilds/') || f.includes(`/prebuilds/${process.platform}-${process.arch}/`)),
    );
    assert.ok(addons.includes(posix.join('build', 'Release', 'tcptracer_loader.node')), addons.join(', '));
    for (const addon of addons) {
      for (const [lib, owner] of libraryPackages(runtimeApp(addon))) {
        assert.ok(allowed.has(owner), `${addon} loads ${lib} from ${owner}, which the runtime stage does not install`);
      }
      // And it loads: dlopen in a Node of the image's major, from the runtime tree.
      const r = spawnSync(HOST_NODE, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', runtimeApp(addon)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${addon} does not load: ${r.stderr}`);
    }
  });

  it('runtime stage: the entrypoint starts from that tree, prints the usage for --help and the version for --version, writing nothing', () => {
    requireBuilt();
    const [program, ...args] = entrypoint;
    assert.equal(program, 'node');
    const beforeRun = listFiles(runtime().root).map((f) => `${f} ${statSync(join(runtime().root, f)).mtimeMs}`);
    const r = spawnSync(HOST_NODE, [...args, '--help'], {
      cwd: runtimeApp(),
      env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', ...runtime().env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: tcptracer /);
    const version = spawnSync(HOST_NODE, [...args, '--version'], { cwd: runtimeApp(), env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', ...runtime().env }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout, `tcptracer ${pkg.version}\n`, "--version reads the image's package.json");
    const afterRun = listFiles(runtime().root).map((f) => `${f} ${statSync(join(runtime().root, f)).mtimeMs}`);
    assert.deepEqual(afterRun, beforeRun, 'the image was written to at run time (readOnlyRootFilesystem)');
  });

  it('runtime stage: holds the loader (the BPF object embedded in it) where src/native.ts looks, and no compiler-only leftovers', () => {
    requireBuilt();
    assert.ok(existsSync(runtimeApp('build', 'Release', 'tcptracer_loader.node')));
    const files = listFiles(runtimeApp());
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('bpf/')), 'sources reached the runtime stage');
    assert.ok(!files.some((f) => f.startsWith('node_modules/typescript/') || f.startsWith('node_modules/node/')), 'devDependencies reached the runtime stage');
  });
});

/** `node` and `npm` shims: the project's Node, and npm's CLI run by it (as in the image). */
function shims(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'node'), `#!/bin/sh\nexec '${HOST_NODE}' "$@"\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'npm'), `#!/bin/sh\nexec '${HOST_NODE}' '${NPM_CLI}' "$@"\n`, { mode: 0o755 });
}
