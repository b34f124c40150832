/**
 * Least privilege: a tracer started as root becomes `nobody` (or --user) once
 * the probe is attached; on every thread, no uid 0 and no capability is left,
 * and it keeps tracing, counting losses and exporting. --user root keeps root.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { TestCollector } from './fixtures/otlp-collector.ts';
import { kernelSuite, lostEvents, NetNs, startPeer, startTracer } from './helpers/kernel.ts';

const suite = kernelSuite();

interface ThreadCreds {
  tid: string;
  uids: string;
  gids: string;
  groups: string;
  capEff: string;
  capPrm: string;
  noNewPrivs: string;
}

/** Credentials of every thread of `pid`, from /proc/PID/task/TID/status. */
function threads(pid: number): ThreadCreds[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (name: string): string => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
    return { tid, uids: field('Uid'), gids: field('Gid'), groups: field('Groups'), capEff: field('CapEff'), capPrm: field('CapPrm'), noNewPrivs: field('NoNewPrivs') };
  });
}

async function oneConnection(ns: NetNs, port: number, names: [string, string]): Promise<void> {
  const server = await startPeer(ns, ['server', '127.0.0.1', String(port), '1', names[0]]);
  const client = await startPeer(ns, ['client', '127.0.0.1', String(port), '1', names[1]]);
  assert.equal(await client.exited, 0);
  assert.equal(await server.exited, 0);
}

describe('kernel: least privilege after attach', suite, () => {
  let ns: NetNs;
  before(() => {
    ns = new NetNs();
  });
  after(() => {
    ns.delete();
  });

  test('once the banner is out: nobody on every thread, no capabilities, no_new_privs; it still traces and counts losses', async () => {
    // a tiny ring buffer, so that losses happen and are read from the kernel's counter after the drop
    const env = { ...process.env, TCPTRACER_RINGBUF_BYTES: '4096' };
    const tracer = await startTracer(['-N', String(ns.inode)], { env });
    const pid = tracer.child.pid ?? 0;
    let creds: ThreadCreds[];
    try {
      creds = threads(pid);
    } catch (e) {
      tracer.child.kill('SIGKILL');
      throw e;
    }
    assert.ok(creds.length >= 5, `threads: ${creds.length}`);
    for (const t of creds) {
      assert.equal(t.uids, '65534\t65534\t65534\t65534', `thread ${t.tid} uids`);
      assert.equal(t.gids, '65534\t65534\t65534\t65534', `thread ${t.tid} gids`);
      assert.equal(t.groups, '', `thread ${t.tid} supplementary groups`);
      assert.equal(t.capEff, '0000000000000000', `thread ${t.tid} CapEff`);
      assert.equal(t.capPrm, '0000000000000000', `thread ${t.tid} CapPrm`);
    }
    assert.equal(threads(pid).find((t) => t.tid === String(pid))?.noNewPrivs, '1', 'no_new_privs');
    await oneConnection(ns, 7700, ['tt-pv-srv', 'tt-pv-cli']);
    // the tracer stopped while the burst runs: its 4 KiB ring buffer overflows however fast the machine is
    tracer.child.kill('SIGSTOP');
    const burstServer = await startPeer(ns, ['server', '127.0.0.1', '7701', '500', 'tt-pv-bs']);
    const burstClient = await startPeer(ns, ['client', '127.0.0.1', '7701', '500', 'tt-pv-bc', '64']);
    await burstClient.exited;
    await burstServer.exited;
    tracer.child.kill('SIGCONT');
    const { events, stderr, code } = await tracer.stop();
    assert.equal(code, 0, stderr);
    assert.deepEqual(events.filter((e) => e.comm.startsWith('tt-pv-') && e.comm.length === 9).map((e) => e.type).sort(), ['accept', 'close', 'close', 'connect']);
    const lost = lostEvents(stderr) ?? 0;
    assert.ok(lost > 0, `losses still counted after the drop: ${stderr}`);
    assert.equal(events.length + lost, 4 + 4 * 500);
  });

  test('as nobody it keeps exporting over OTLP', async () => {
    const collector = new TestCollector();
    await collector.start();
    try {
      const tracer = await startTracer(['--otlp', '-q', '-N', String(ns.inode), '--otlp-endpoint', collector.endpoint, '--otlp-signals', 'logs'], { json: false });
      assert.ok(threads(tracer.child.pid ?? 0).every((t) => t.capEff === '0000000000000000' && !t.uids.startsWith('0')));
      await oneConnection(ns, 7710, ['tt-pvo-srv', 'tt-pvo-cli']);
      await collector.waitForRecords(4, 20_000);
      const { code, stderr } = await tracer.stop('SIGTERM');
      assert.equal(code, 0, stderr);
      assert.equal(collector.records.length, 4);
    } finally {
      collector.stop();
    }
  });

  test('--user root keeps root', async () => {
    const tracer = await startTracer(['-N', String(ns.inode), '--user', 'root']);
    const main = threads(tracer.child.pid ?? 0).find((t) => t.tid === String(tracer.child.pid));
    assert.ok(main);
    assert.equal(main.uids, '0\t0\t0\t0');
    assert.notEqual(main.capEff, '0000000000000000');
    await oneConnection(ns, 7720, ['tt-pvr-srv', 'tt-pvr-cli']);
    const { events } = await tracer.stop();
    assert.equal(events.length, 4);
  });
});
