/**
 * Checks made before anything is loaded, so that a missing requirement is named
 * in one line instead of surfacing as an opaque libbpf errno.
 */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { EnvironmentError } from './errors.ts';

/** BPF ring buffers (and the tracepoints used) need Linux 5.8. */
export const MIN_KERNEL: readonly [number, number] = [5, 8];
export const BTF_PATH = '/sys/kernel/btf/vmlinux';

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export interface HostFacts {
  euid: number;
  /** CapEff from /proc/self/status, as a bit mask. */
  capEff: bigint;
  kernelRelease: string;
  btfPresent: boolean;
}

export function readHostFacts(): HostFacts {
  let capEff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m?.[1]) capEff = BigInt(`0x${m[1]}`);
  } catch {
    // not Linux, or no procfs: the checks below say what is missing
  }
  return {
    euid: process.geteuid?.() ?? -1,
    capEff,
    kernelRelease: release(),
    btfPresent: existsSync(BTF_PATH),
  };
}

function hasCap(mask: bigint, cap: bigint): boolean {
  return ((mask >> cap) & 1n) === 1n;
}

/** Throws EnvironmentError naming the first unmet requirement. */
export function checkHost(f: HostFacts): void {
  const privileged =
    hasCap(f.capEff, CAP_SYS_ADMIN) || (hasCap(f.capEff, CAP_BPF) && hasCap(f.capEff, CAP_PERFMON));
  if (!privileged) {
    throw new EnvironmentError(
      f.euid === 0
        ? 'missing capabilities: tcptracer needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)'
        : 'tcptracer must run as root (or with CAP_BPF and CAP_PERFMON): try sudo',
    );
  }
  const m = /^(\d+)\.(\d+)/.exec(f.kernelRelease);
  const [maj, min] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (maj < MIN_KERNEL[0] || (maj === MIN_KERNEL[0] && min < MIN_KERNEL[1])) {
    throw new EnvironmentError(
      `kernel ${f.kernelRelease} is too old: tcptracer needs Linux ${MIN_KERNEL.join('.')} or later (BPF ring buffer)`,
    );
  }
  if (!f.btfPresent) {
    throw new EnvironmentError(
      `no kernel BTF at ${BTF_PATH}: tcptracer needs a kernel built with CONFIG_DEBUG_INFO_BTF=y`,
    );
  }
}
