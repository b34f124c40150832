/**
 * The network namespaces and test collector a kernel suite runs in, made
 * before its tests (construct in the describe body) and removed after them.
 */
import { after, before } from 'node:test';
import { TestCollector } from '../fixtures/otlp-collector.ts';
import { NetNs } from './kernel.ts';

/**
 * Two "hosts": network namespaces A and B linked by two veth pairs (IPv4
 * 198.18.N.1/24 <-> .2, IPv6 fd00:N::1/64 <-> ::2), and a test collector both
 * hosts' tracers export to.
 */
export class TwoHosts {
  a!: NetNs;
  b!: NetNs;
  collector!: TestCollector;
  /** B's addresses, which A's clients connect to. */
  readonly serverAddress: { readonly 4: string; readonly 6: string };

  /** `subnet`: N in the addresses above (a suite of its own per number, 0-255). */
  constructor(subnet: number) {
    this.serverAddress = { 4: `198.18.${subnet}.2`, 6: `fd00:${subnet}::2` };
    before(async () => {
      this.a = new NetNs();
      this.b = new NetNs();
      this.a.link(this.b, `198.18.${subnet}.1/24`, `198.18.${subnet}.2/24`);
      this.a.link(this.b, `fd00:${subnet}::1/64`, `fd00:${subnet}::2/64`);
      this.collector = new TestCollector();
      await this.collector.start();
    });
    after(() => {
      this.collector.stop();
      this.a.delete();
      this.b.delete();
    });
  }
}

/** One namespace for the traced workload, and a test collector as the backend behind a real Collector. */
export class HostWithBackend {
  ns!: NetNs;
  backend!: TestCollector;

  constructor() {
    before(async () => {
      this.ns = new NetNs();
      this.backend = new TestCollector();
      await this.backend.start();
    });
    after(() => {
      this.backend.stop();
      this.ns.delete();
    });
  }
}
