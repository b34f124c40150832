/**
 * A Dockerfile read and laid out the way Docker would build it, without Docker:
 * the instructions per stage, the build context as .dockerignore filters it, and
 * COPY into a scratch directory that stands for the stage's filesystem root.
 * Running RUN commands is left to the test, which knows which ones are safe here.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join, posix, relative } from 'node:path';

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly op: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly index: number;
  readonly instructions: Instruction[];
}

/**
 * The capabilities tcptracer needs at start, and only then: BPF and PERFMON to load and attach the
 * probe, SETUID and SETGID to drop to --user (nobody) afterwards, SYS_RESOURCE for RLIMIT_MEMLOCK on
 * kernels before 5.11. The Dockerfile's `docker run` and the DaemonSet's tracer container both grant
 * exactly these (test/unit-dockerfile.test.ts, test/unit-daemonset.test.ts).
 */
export const TRACER_START_CAPABILITIES: readonly string[] = ['BPF', 'PERFMON', 'SETUID', 'SETGID', 'SYS_RESOURCE'];

/** The instructions the scratch build understands; any other one fails the test. */
export const KNOWN_OPS = new Set(['FROM', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'ENTRYPOINT', 'CMD', 'LABEL']);

/** Stages in order, comments and parser directives dropped, continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  let start = 0;
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    if (pending === '') start = i + 1;
    const continued = line.endsWith('\\');
    pending += continued ? `${line.slice(0, -1).trim()} ` : line;
    if (continued) continue;
    const match = /^(\S+)\s*(.*)$/s.exec(pending.trim());
    pending = '';
    if (!match) continue;
    const op = (match[1] ?? '').toUpperCase();
    const args = (match[2] ?? '').trim();
    if (!KNOWN_OPS.has(op)) throw new Error(`Dockerfile:${start}: ${op} is not handled by the scratch build; teach test/helpers/dockerfile.ts`);
    if (op === 'FROM') {
      const [image = '', as, name] = args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, index: stages.length, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile:${start}: ${op} before FROM`);
    stage.instructions.push({ op, args, line: start });
  }
  return stages;
}

/** Exec-form (JSON array) arguments of ENTRYPOINT/CMD/RUN; shell form is refused. */
export function execForm(instruction: Instruction): string[] {
  const parsed: unknown = JSON.parse(instruction.args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) {
    throw new Error(`Dockerfile:${instruction.line}: ${instruction.op} must be a JSON array of strings`);
  }
  return parsed;
}

/** ENV key=value pairs (the only form used; the legacy "ENV key value" is refused). */
export function envPairs(instruction: Instruction): [string, string][] {
  return instruction.args.split(/\s+/).map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`Dockerfile:${instruction.line}: ENV must be key=value`);
    return [pair.slice(0, eq), pair.slice(eq + 1).replace(/^"(.*)"$/, '$1')];
  });
}

export interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  readonly dest: string;
}

export function parseCopy(instruction: Instruction): Copy {
  const words = instruction.args.split(/\s+/);
  if (words.some((w) => /[*?[]/.test(w))) throw new Error(`Dockerfile:${instruction.line}: COPY wildcards are not handled by the scratch build`);
  let from: string | undefined;
  const paths: string[] = [];
  for (const word of words) {
    if (word.startsWith('--from=')) from = word.slice('--from='.length);
    else if (word.startsWith('--')) throw new Error(`Dockerfile:${instruction.line}: COPY ${word} is not handled by the scratch build`);
    else paths.push(word);
  }
  const dest = paths.pop();
  if (dest === undefined || paths.length === 0) throw new Error(`Dockerfile:${instruction.line}: COPY needs a source and a destination`);
  return { from, sources: paths, dest };
}

/**
 * .dockerignore as Docker applies it (moby/patternmatcher): patterns are paths
 * relative to the context root, `*` and `?` stay within one path segment, `**`
 * spans any number of them, a pattern that matches a directory excludes what is
 * under it, `!` re-includes, and the last matching pattern wins.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negated = l.startsWith('!');
      const pattern = posix.normalize((negated ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
      return { negated, regex: globRegex(pattern) };
    });
  return (path: string): boolean => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) {
      if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.negated;
    }
    return excluded;
  };
}

function globRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*' && pattern[i + 1] === '*') {
      // "**/" may match nothing; a trailing "**" matches everything below.
      const slash = pattern[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      re += end > i ? pattern.slice(i, end + 1).replace('[!', '[^') : '\\[';
      if (end > i) i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Resolves a path inside a stage's root against its WORKDIR. */
export function inStage(root: string, workdir: string, path: string): string {
  return join(root, posix.resolve(workdir, path));
}

/**
 * COPY one source into dest, as Docker does: a directory's contents go into dest,
 * a file goes to dest (or into it when dest ends with "/" or there are several
 * sources). `skip` says which files of the source to leave out (the ignored ones).
 * Returns the files written, relative to the stage root.
 */
export function copyInto(
  sourceAbs: string,
  destAbs: string,
  destIsDir: boolean,
  skip: (sourceFile: string) => boolean,
): string[] {
  if (!existsSync(sourceAbs)) throw new Error(`COPY source ${sourceAbs} does not exist`);
  const written: string[] = [];
  const stat = lstatSync(sourceAbs);
  if (stat.isDirectory()) {
    mkdirSync(destAbs, { recursive: true });
    for (const entry of readdirSync(sourceAbs)) {
      const from = join(sourceAbs, entry);
      if (skip(from)) continue;
      written.push(...copyInto(from, join(destAbs, entry), lstatSync(from).isDirectory(), skip));
    }
    return written;
  }
  const target = destIsDir ? join(destAbs, posix.basename(sourceAbs)) : destAbs;
  mkdirSync(join(target, '..'), { recursive: true });
  // Docker keeps symbolic links as links (node_modules/.bin is made of them).
  if (stat.isSymbolicLink()) symlinkSync(readlinkSync(sourceAbs), target);
  else copyFileSync(sourceAbs, target);
  written.push(target);
  return written;
}

/** Every file under dir, relative to it, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(relative(dir, full));
    }
  };
  walk(dir);
  return out.sort();
}

/** What the scratch build did with one `&&`-separated part of a RUN. */
export interface RunStep {
  readonly command: string;
  /** run: executed in the stage's WORKDIR; apt: packages checked, not installed; skipped: image housekeeping. */
  readonly kind: 'run' | 'apt' | 'skipped';
  readonly packages: string[];
}

export interface BuiltStage {
  readonly stage: Stage;
  /** The stage's filesystem root: WORKDIR /app is `${root}/app`. */
  readonly root: string;
  readonly workdir: string;
  readonly env: Record<string, string>;
  readonly steps: RunStep[];
  /** Files COPY wrote, relative to root. */
  readonly copied: string[];
}

export interface ScratchOptions {
  /** The build context: the directory `docker build` is given. */
  readonly context: string;
  /** Where the stage roots are laid out (stage N in `${scratch}/stage-N`). */
  readonly scratch: string;
  /** Prepended to PATH for RUN commands: where `node` and `npm` of the image's major are found here. */
  readonly binPath: string;
  /** Image paths an ENV value may name, and the directory that stands for each here. */
  readonly imagePaths: Readonly<Record<string, string>>;
  /** Extra environment for RUN commands (e.g. npm's offline preference); never the stage's own. */
  readonly runEnv: Readonly<Record<string, string>>;
  /** Runs one command; throws with its output when it fails. */
  readonly exec: (command: string, cwd: string, env: Record<string, string>) => void;
}

/** Classifies one part of a RUN; anything the scratch build cannot judge is an error. */
export function classifyRun(command: string): RunStep {
  const words = command.trim().split(/\s+/);
  if (/["'`$;|<>]/.test(command)) throw new Error(`RUN part "${command}": quoting, variables, ; and pipes are not handled by the scratch build`);
  if (words[0] === 'apt-get' && words[1] === 'update') return { command, kind: 'skipped', packages: [] };
  if (words[0] === 'apt-get' && words[1] === 'install') {
    return { command, kind: 'apt', packages: words.slice(2).filter((w) => !w.startsWith('-')) };
  }
  if (command.trim() === 'rm -rf /var/lib/apt/lists/*') return { command, kind: 'skipped', packages: [] };
  if (words[0] === 'npm') return { command, kind: 'run', packages: [] };
  throw new Error(`RUN part "${command}" is not handled by the scratch build; teach test/helpers/dockerfile.ts whether it is safe to run`);
}

/** Builds every stage in order into its own scratch root; throws at the first failing step. */
export function scratchBuild(dockerfile: string, ignore: string, options: ScratchOptions): BuiltStage[] {
  const ignored = dockerignore(ignore);
  const built: BuiltStage[] = [];
  for (const stage of parseDockerfile(dockerfile)) {
    const root = join(options.scratch, `stage-${stage.index}`);
    mkdirSync(root, { recursive: true });
    let workdir = '/';
    const env: Record<string, string> = {};
    const steps: RunStep[] = [];
    const copied: string[] = [];
    for (const instruction of stage.instructions) {
      const at = `Dockerfile:${instruction.line} (stage ${stage.name ?? stage.index})`;
      switch (instruction.op) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, instruction.args);
          mkdirSync(inStage(root, workdir, '.'), { recursive: true });
          break;
        case 'ENV':
          for (const [key, value] of envPairs(instruction)) env[key] = value;
          break;
        case 'COPY': {
          const copy = parseCopy(instruction);
          const destIsDir = copy.dest.endsWith('/') || copy.sources.length > 1;
          const destAbs = inStage(root, workdir, copy.dest);
          for (const source of copy.sources) {
            let sourceAbs: string;
            let skip: (file: string) => boolean;
            if (copy.from === undefined) {
              const rel = posix.normalize(source).replace(/\/+$/, '');
              if (rel.startsWith('..') || rel.startsWith('/')) throw new Error(`${at}: COPY ${source} is outside the context`);
              if (ignored(rel)) throw new Error(`${at}: COPY ${source}: excluded by .dockerignore (Docker: not found)`);
              sourceAbs = join(options.context, rel);
              skip = (file) => ignored(relative(options.context, file));
            } else {
              const from = built.find((b) => b.stage.name === copy.from || String(b.stage.index) === copy.from);
              if (!from) throw new Error(`${at}: COPY --from=${copy.from}: no such earlier stage`);
              sourceAbs = inStage(from.root, from.workdir, source);
              skip = () => false;
            }
            if (!existsSync(sourceAbs)) {
              const where = copy.from === undefined ? 'in the build context' : `in stage ${copy.from} after its RUN steps`;
              throw new Error(`${at}: COPY ${source}: not found ${where}`);
            }
            copied.push(...copyInto(sourceAbs, destAbs, destIsDir, skip).map((f) => relative(root, f)));
          }
          break;
        }
        case 'RUN': {
          for (const part of instruction.args.split('&&')) {
            const step = classifyRun(part.trim());
            steps.push(step);
            if (step.kind !== 'run') continue;
            const mapped = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, options.imagePaths[v] ?? v]));
            const path = `${options.binPath}:${process.env['PATH'] ?? '/usr/bin:/bin'}`;
            options.exec(step.command, inStage(root, workdir, '.'), { ...process.env, ...mapped, ...options.runEnv, PATH: path });
          }
          break;
        }
        default:
          break;
      }
    }
    built.push({ stage, root, workdir, env, steps, copied });
  }
  return built;
}
