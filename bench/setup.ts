/**
 * What the bench needs before it measures: its C programs built (bench/out/),
 * tracefs mounted, the machine described, and which of the newer flags the
 * measured CLI has.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { cliFeatures, type CliFeatures } from './configs.ts';
import type { Machine } from './results.ts';
import { BenchError, log } from './workload.ts';

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function has(cmd: string): boolean {
  try {
    sh('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Compiles the bench's C programs; returns the reason when the floor cannot be built. */
export function buildC(root: string, out: string): { floorError?: string } {
  mkdirSync(out, { recursive: true });
  const cc = has('cc') ? 'cc' : has('clang') ? 'clang' : undefined;
  if (!cc) throw new BenchError('no C compiler (cc or clang) found: install build-essential or clang');
  try {
    sh(cc, ['-O2', '-Wall', '-pthread', join(root, 'bench/loadgen.c'), '-o', join(out, 'loadgen')]);
  } catch (e) {
    throw new BenchError(`building bench/loadgen.c failed: ${((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n')[0] ?? ''}`);
  }
  try {
    // the skeleton `npm run build` generated: the same object the loader embeds
    sh(cc, ['-O2', '-Wall', `-I${join(root, 'bpf')}`, `-I${join(root, 'build/Release/obj/gen')}`, join(root, 'bench/floor.c'), '-o', join(out, 'floor'), '-lbpf', '-lelf', '-lz']);
    return {};
  } catch (e) {
    return { floorError: `building bench/floor.c failed (libbpf-dev installed?): ${((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n')[0] ?? ''}` };
  }
}

/** Which of the newer flags the CLI has, from its --help. */
export function features(node: string, cli: string): CliFeatures {
  let help = '';
  try {
    help = sh(node, [cli, '--help']);
  } catch (e) {
    log(`${cli} --help failed: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
  return cliFeatures(help);
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // keep os.cpus()'s
  }
  let bpftrace = 'absent';
  try {
    bpftrace = sh('bpftrace', ['--version']).replace(/^bpftrace\s*/, '');
  } catch {
    // absent
  }
  return {
    cpu,
    cores: availableParallelism(),
    memoryGB: totalmem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    bpftrace,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

export function ensureTracefs(): void {
  if (existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events')) return;
  try {
    sh('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  } catch (e) {
    throw new BenchError(`tracefs is not mounted and mounting it failed: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
}
