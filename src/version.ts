/**
 * This package's version (from package.json, found upwards from this file:
 * src/ when run as .ts, dist/src/ when built) and the Node.js it needs.
 *
 * The Node requirement is checked here, where the tracer runs, not through
 * package.json's `engines`: npx checks engines against the Node that runs npm
 * itself (often the system's, older), not the pinned one that runs the bin, and
 * warns on every start.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'tcptracer-otel';

/** The oldest Node.js the tracer runs on: what the current OpenTelemetry JS line requires. */
export const MIN_NODE: readonly [major: number, minor: number] = [22, 15];

let cached: string | undefined;

/** The version in package.json, or `unknown`. */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // no package.json here: keep looking upwards
    }
    if (dirname(dir) === dir) return (cached = 'unknown');
  }
}

/** Why this Node.js cannot run the tracer, or undefined when it can. */
export function unsupportedNode(version: string = process.versions.node): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const [wantMajor, wantMinor] = MIN_NODE;
  if (major > wantMajor || (major === wantMajor && minor >= wantMinor)) return undefined;
  return (
    `Node.js ${version} is too old: tcptracer needs Node.js ${wantMajor}.${wantMinor} or later ` +
    `(npm ci installs one into node_modules/.bin; npx tcptracer runs it)`
  );
}
