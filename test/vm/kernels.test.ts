/**
 * The kernel tests on other kernels: test/vm/run.sh boots each Debian kernel
 * below under qemu (software emulation) and runs every test/kernel-*.test.ts
 * there, with the same no-skip rule (CI is passed through). The guest's output
 * is streamed to stderr, each line prefixed with its kernel, and a failure
 * names the guest's failing tests.
 *
 * Skipped with the reason where the VM cannot run (not root, no build) or is
 * not wanted (TCPTRACER_VM_KERNELS=none); under CI=true that is a failure
 * instead. qemu need not be there: run.sh installs what is missing, as
 * scripts/setup.sh does for the host's tests.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, test, type TestContext } from 'node:test';
import { ROOT } from '../helpers/kernel.ts';

/**
 * Debian's kernels the suite runs on by default: Debian 12's 6.1 LTS and the
 * 6.12 line (Debian 13's, here as Debian 12's backport), the two lines Debian's
 * registry offers here, each its newest package. TCPTRACER_VM_KERNELS names
 * others, or none.
 */
const DEFAULT_KERNELS = ['6.1.0-57-amd64', '6.12.117+deb12-amd64'];
/**
 * run.sh stops a VM after this (seconds); a whole run takes about a third of it
 * (README). The VMs run at once: each emulates its two CPUs on one host thread.
 */
const VM_TIMEOUT_S = 3600;

const asked = process.env.TCPTRACER_VM_KERNELS;
const kernels = (asked ?? DEFAULT_KERNELS.join(' ')).split(/[\s,]+/).filter((k) => k && k !== 'none');

function skipReason(): string | undefined {
  if (kernels.length === 0) return `TCPTRACER_VM_KERNELS=${asked ?? ''}`;
  if (process.geteuid?.() !== 0) return 'the VM kernel tests need root (sudo test/vm/run.sh)';
  if (!existsSync(`${ROOT}build/Release/tcptracer_loader.node`)) return 'native loader not built (npm run build)';
  return undefined;
}

const reason = skipReason();
// under CI a skip is a failure, TCPTRACER_VM_KERNELS=none included
if (reason && process.env.CI === 'true') {
  test('VM kernel tests must run under CI', () => {
    throw new Error(`${reason} (CI=true: a skipped kernel test is a failure)`);
  });
}

if (kernels.length === 0) test('kernel tests in a VM', { skip: reason ?? true }, () => undefined);

/** Boots one kernel with run.sh and passes when every kernel test passed there. */
async function runInVm(t: TestContext, kernel: string): Promise<void> {
  const started = Date.now();
  const child = spawn(`${ROOT}test/vm/run.sh`, [], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TCPTRACER_VM_KERNEL: kernel,
      TCPTRACER_VM_TIMEOUT: String(VM_TIMEOUT_S),
      NO_COLOR: '1',
      // the stress test's rounds, smaller under emulation (about 20x slower)
      TCPTRACER_STRESS_CONNECTIONS: process.env.TCPTRACER_STRESS_CONNECTIONS ?? '1000',
      TCPTRACER_VM_ENV: 'NO_COLOR TCPTRACER_STRESS_CONNECTIONS TCPTRACER_STRESS_ROUNDS TCPTRACER_STRESS_SEEDS',
    },
    // a cancelled or timed-out test stops the VM: run.sh kills qemu on SIGTERM
    signal: t.signal,
    killSignal: 'SIGTERM',
  });
  const tail: string[] = [];
  const failing: string[] = [];
  let inFailing = false;
  const collect = (stream: NodeJS.ReadableStream): Promise<void> =>
    new Promise((resolve) => {
      const lines = createInterface({ input: stream });
      lines.on('line', (raw) => {
        // the guest's console: CRLF line ends, no colours asked for but strip any
        // eslint-disable-next-line no-control-regex
        const line = raw.replace(/\r$/, '').replace(/\x1b\[[0-9;]*m/g, '');
        process.stderr.write(`[vm ${kernel}] ${line}\n`);
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (/^✖ failing tests:/.test(line)) inFailing = true;
        else if (/^tt-vm: tests exited/.test(line)) inFailing = false;
        else if (inFailing && failing.length < 200) failing.push(line);
      });
      lines.on('close', resolve);
    });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => { resolve({ code, signal }); });
    child.on('error', (e) => {
      process.stderr.write(`[vm ${kernel}] test/vm/run.sh: ${e.message}\n`);
      resolve({ code: null, signal: null });
    });
  });
  await Promise.all([collect(child.stdout), collect(child.stderr)]);
  const { code, signal } = await exited;
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  t.diagnostic(`Linux ${kernel}: run.sh exited ${code ?? signal ?? '?'} after ${minutes} min`);
  assert.equal(code, 0, `Linux ${kernel}: test/vm/run.sh exited ${code ?? signal ?? '?'} after ${minutes} min\n${
    (failing.length > 0 ? failing : tail).join('\n')}`);
}

if (kernels.length > 0) {
  describe('kernel tests in VMs', { concurrency: true }, () => {
    for (const kernel of kernels) {
      test(`kernel tests on Linux ${kernel} in a VM`, { skip: reason ?? false, timeout: (VM_TIMEOUT_S + 120) * 1000 }, (t) => runInVm(t, kernel));
    }
  });
}
