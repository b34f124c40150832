/**
 * Fails safe, with the real CLI: a failed privilege drop ends the tracer (never
 * left running as root); an output that fails ends it with one line; a stalled
 * reader is back-pressure with bounded memory, and SIGTERM still ends it; a
 * traced process cannot write control sequences into the table.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { CLI, kernelSuite, lostEvents, NetNs, run, startPeer, startTracer, within } from './helpers/kernel.ts';

const suite = kernelSuite();

/** Whether the tracer, a child of `shell`, has given up root (so its probe is attached). */
async function tracerDropped(shell: number): Promise<boolean> {
  for (const task of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const status = await readFile(`/proc/${task}/status`, 'utf8');
      if (new RegExp(`^PPid:\\t${shell}$`, 'm').test(status) && /^Uid:\t65534\t/m.test(status) && /^Name:\tnode/m.test(status)) return true;
    } catch {
      // gone
    }
  }
  return false;
}

/** VmRSS of `pid` in MiB. */
function rssMiB(pid: number): number {
  return Number(/^VmRSS:\s*(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

describe('kernel: fails safe', suite, () => {
  let ns: NetNs;
  before(() => {
    ns = new NetNs();
  });
  after(() => {
    ns.delete();
  });

  test('without CAP_SETUID/CAP_SETGID the privilege drop fails: one line, exit 1, the process ends', () => {
    // capabilities out of the bounding set: root keeps uid 0, but cannot change it
    const r = run('setpriv', ['--bounding-set=-setuid,-setgid', process.execPath, CLI, '-N', String(ns.inode)]);
    assert.notEqual(r.code, null, `still running after 30 s (as root): ${r.stderr}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^tcptracer: cannot drop privileges to nobody \(uid 65534\): EPERM[^\n]*\n$/);
    assert.equal(r.stdout, '', 'no banner: it never traced');
  });

  test('an output that fails (/dev/full): one line, exit 1, the process ends', () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = run('sh', ['-c', `exec "$0" "$@" >&3`, process.execPath, CLI, '-N', String(ns.inode)], undefined, [full]);
      assert.notEqual(r.code, null, `still running after 30 s: ${r.stderr}`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^tcptracer: writing output: ENOSPC[^\n]*\n$/);
    } finally {
      closeSync(full);
    }
  });

  test('a reader that goes away (`| head -n 2`): the tracer stops, exit 0, no error and nothing counted', async () => {
    const status = '${PIPESTATUS[0]}';
    const child = spawn('bash', ['-c', `"$@" | head -n 2 >/dev/null; echo "exit ${status}" >&2`, 'bash', process.execPath, CLI, '-N', String(ns.inode), '--no-identity'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
    try {
      // the banner and header fill head's two lines; wait until the probe is attached (root dropped)
      await within((async () => {
        while (!(await tracerDropped(child.pid ?? 0))) await new Promise((r) => setTimeout(r, 50));
      })(), 60_000, 'the tracer start');
      const server = await startPeer(ns, ['server', '127.0.0.1', '7803', '1', 'tt-fsh-srv']);
      const client = await startPeer(ns, ['client', '127.0.0.1', '7803', '1', 'tt-fsh-cli']);
      assert.equal(await client.exited, 0);
      assert.equal(await server.exited, 0);
      await within(exited, 60_000, "the tracer's exit after its reader left");
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(stderr, 'exit 0\n');
  });

  test('a reader that stops: memory stays bounded, losses are counted, SIGTERM ends it within the deadline', async (t) => {
    const env = { ...process.env, TCPTRACER_RINGBUF_BYTES: '64K' };
    const tracer = await startTracer(['-N', String(ns.inode), '--no-identity'], { json: false, env, stdout: 'stalled' });
    const pid = tracer.child.pid ?? 0;
    const connections = 40_000;
    const server = await startPeer(ns, ['server', '127.0.0.1', '7800', String(connections), 'tt-fs-srv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7800', String(connections), 'tt-fs-cli', '32']);
    const baseline = rssMiB(pid);
    let peak = baseline;
    const sampler = setInterval(() => { peak = Math.max(peak, rssMiB(pid)); }, 100);
    try {
      assert.equal(await within(client.exited, 240_000, 'the client'), 0);
      assert.equal(await within(server.exited, 60_000, 'the server'), 0);
    } finally {
      clearInterval(sampler);
    }
    t.diagnostic(`RSS ${baseline.toFixed(1)} -> ${peak.toFixed(1)} MiB`);
    // unbounded, its 160000 events took 25 MB more in the output's buffer
    assert.ok(peak - baseline < 12, `RSS grew from ${baseline.toFixed(1)} to ${peak.toFixed(1)} MiB`);
    const started = performance.now();
    const { stderr, code } = await tracer.stop('SIGTERM');
    // the deadline is 5 s; the rest is a hang detector for a loaded machine
    assert.ok(performance.now() - started < 60_000);
    assert.equal(code, 0, stderr);
    const lost = lostEvents(stderr) ?? 0;
    assert.ok(lost > 0, `the ring buffer's losses are counted: ${stderr}`);
    const unwritten = Number(/tcptracer: (\d+) events not written/.exec(stderr)?.[1] ?? 0);
    const skipped = Number(/(\d+) probe runs skipped/.exec(stderr)?.[1] ?? 0);
    // rows that reached the pipe (the last may be cut short), plus the counted ones, are every event
    const rows = tracer.stdout().split('\n').slice(2, -1).filter((l) => / tt-fs-(srv|cli) /.test(l)).length;
    const total = rows + lost + unwritten;
    // a batch written in part is counted unwritten whole
    assert.ok(total >= 4 * connections - 1 - skipped && total <= 4 * connections + 1024,
      `rows ${rows} + lost ${lost} + unwritten ${unwritten} = ${total}, expected ${4 * connections}: ${stderr}`);
  });

  test('while SIGTERM waits for a stalled reader, a second signal (SIGINT) ends the process at once', async () => {
    const tracer = await startTracer(['-N', String(ns.inode), '--no-identity'], { json: false, stdout: 'stalled' });
    const server = await startPeer(ns, ['server', '127.0.0.1', '7805', '2000', 'tt-fs2-srv']);
    const client = await startPeer(ns, ['client', '127.0.0.1', '7805', '2000', 'tt-fs2-cli', '16']);
    assert.equal(await within(client.exited, 120_000, 'the client'), 0);
    assert.equal(await within(server.exited, 60_000, 'the server'), 0);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => tracer.child.once('exit', (_code, signal) => { resolve(signal); }));
    tracer.child.kill('SIGTERM');
    // 8000 rows do not fit the pipe: the shutdown waits for the reader, up to its 5 s deadline
    await new Promise((r) => setTimeout(r, 1000));
    tracer.child.kill('SIGINT');
    assert.equal(await within(exited, 60_000, "the tracer's exit"), 'SIGINT', tracer.stderr());
  });

  test('a hostile COMM (newline, ESC, OSC, CR, BS, DEL, C1, U+202E) is escaped in the table, with and without -v', async () => {
    const names = ['a\nC  1 fake 4 ', '\x1b]0;x\x07\u202e\u009b\r\b\x7f'];
    for (const verbose of [[], ['-v']]) {
      const tracer = await startTracer(['-N', String(ns.inode), ...verbose], { json: false });
      const server = await startPeer(ns, ['server', '127.0.0.1', '7810', '1', names[1] ?? '']);
      const client = await startPeer(ns, ['client', '127.0.0.1', '7810', '1', names[0] ?? '']);
      assert.equal(await client.exited, 0);
      assert.equal(await server.exited, 0);
      const { code, stderr } = await tracer.stop();
      assert.equal(code, 0, stderr);
      const lines = tracer.stdout().split('\n');
      assert.equal(lines.pop(), '');
      for (const l of lines) assert.doesNotMatch(l, /[\p{Cc}\p{Cf}]/u, l);
      // banner, header, C A X X: the forged row is not a row
      assert.equal(lines.length, 6, lines.join('\n'));
      assert.equal(lines.filter((l) => l.includes(' a\\nC  1 fake 4 ')).length, 2, lines.join('\n'));
      assert.equal(lines.filter((l) => l.includes(' \\x1b]0;x\\x07\\u202e\\u009b\\r\\x08\\x7f ')).length, 2, lines.join('\n'));
    }
  });
});
