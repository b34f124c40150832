/**
 * Consistent probability sampling (src/otlp/sampling.ts): the threshold math
 * against the specification's own table, the decision against an independent
 * reading of the trace id's hex, the same decision on both ends of a
 * connection, the always-kept connections, and the configuration.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.ts';
import { describeOtlpConfig, resolveOtlpConfig } from '../src/otlp/config.ts';
import { ALWAYS_KEPT_TRACE_STATE, ConnectionSampler, ratioToTh, resolveSampling, thToThreshold } from '../src/otlp/sampling.ts';
import type { SamplingConfig } from '../src/otlp/sampling.ts';
import { connectionIds, idsFromIsns } from '../src/otlp/traces/ids.ts';
import type { TcpEvent } from '../src/types.ts';
import { connection, tcpEvent } from './fixtures/tcp-events.ts';

const ratio = (r: number): SamplingConfig => ({ sampler: 'traceidratio', ratio: r, source: 'test' });

/** Kept by ratio `r`, read independently: the trace id's last 14 hex digits (56 bits) against (1 - r) * 2^56 from ratioToTh. */
function keptByHex(event: TcpEvent, r: number): boolean {
  const ids = connectionIds(event);
  assert.ok(ids);
  return BigInt(`0x${ids.traceId.slice(18)}`) >= BigInt(`0x${ratioToTh(r).padEnd(14, '0')}`);
}

describe('ratioToTh', () => {
  it("gives the specification's thresholds for 1-in-N sampling at precision 3, 4 and 5", () => {
    // the table under "Converting floating-point probability to threshold value"
    const table: [number, string, string, string][] = [
      [1, '0', '0', '0'],
      [0.5, '8', '8', '8'],
      [1 / 3, 'aab', 'aaab', 'aaaab'],
      [0.25, 'c', 'c', 'c'],
      [0.2, 'ccd', 'cccd', 'ccccd'],
      [0.125, 'e', 'e', 'e'],
      [0.1, 'e66', 'e666', 'e6666'],
      [0.0625, 'f', 'f', 'f'],
      [0.01, 'fd71', 'fd70a', 'fd70a4'],
      [0.001, 'ffbe7', 'ffbe77', 'ffbe76d'],
      [0.0001, 'fff972', 'fff9724', 'fff97247'],
      [0.00001, 'ffff584', 'ffff583a', 'ffff583a5'],
      [0.000001, 'ffffef4', 'ffffef39', 'ffffef391'],
    ];
    for (const [p, three, four, five] of table) {
      assert.deepEqual([ratioToTh(p, 3), ratioToTh(p), ratioToTh(p, 5)], [three, four, five], `p = ${p}`);
    }
  });

  it('rounds a ratio just under 1 to th:0 and keeps the smallest ratio expressible', () => {
    assert.equal(ratioToTh(0.99999999), '0');
    assert.equal(ratioToTh(2 ** -56), 'ffffffffffff');
    assert.throws(() => ratioToTh(0), RangeError);
    assert.throws(() => ratioToTh(1.5), RangeError);
  });

  it('reads th values as 56-bit thresholds, trailing zeros implied', () => {
    assert.equal(thToThreshold('0'), 0n);
    assert.equal(thToThreshold('8'), 2n ** 55n);
    // the specification's 1% example
    assert.equal(thToThreshold('fd70a4'), 71337018784743424n);
    assert.equal(thToThreshold('ffffffffffffff'), 2n ** 56n - 1n);
    assert.throws(() => thToThreshold('fffffffffffffff'), RangeError);
    assert.throws(() => thToThreshold('X'), RangeError);
  });
});

describe('ConnectionSampler', () => {
  it('keeps a trace id whose low 56 bits reach the threshold, whatever its high bits', () => {
    const half = new ConnectionSampler(ratio(0.5));
    const id = Buffer.alloc(16, 0xff);
    id.writeUInt8(0x80, 9);
    id.fill(0, 10);
    assert.equal(half.keepsTraceId(id), true, '0x80000000000000 = the threshold: kept');
    id.writeUInt8(0x7f, 9);
    id.fill(0xff, 10);
    assert.equal(half.keepsTraceId(id), false, 'one under the threshold: sampled out');
    const padded = Buffer.concat([Buffer.alloc(3, 0xaa), Buffer.alloc(16, 0)]);
    padded.writeUInt8(0xc0, 3 + 9);
    assert.equal(half.keepsTraceId(padded, 3), true, 'read at its offset');
  });

  it('decides alike for every event of a connection on both of its hosts, as the trace id says', () => {
    const half = new ConnectionSampler(ratio(0.5));
    let kept = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const { connect, accept, clientClose } = connection(i);
      const expected = keptByHex(connect, 0.5);
      for (const event of [connect, accept, clientClose]) {
        assert.equal(half.decide(event), expected ? 'ot=th:8' : null, `connection ${i} ${event.type} ${event.role}`);
      }
      if (expected) kept++;
    }
    // binomial(2000, 0.5): sd 22.4; 5 sd either side
    assert.ok(Math.abs(kept - n / 2) < 112, `kept ${kept} of ${n}`);
  });

  it('keeps at a smaller ratio a subset of what a larger one keeps, near the ratio', () => {
    const tenth = new ConnectionSampler(ratio(0.1));
    const half = new ConnectionSampler(ratio(0.5));
    let kept = 0;
    const n = 5000;
    for (let i = 0; i < n; i++) {
      const ids = idsFromIsns(0x5000_0000 + i * 7919, 0x6000_0000 + i * 104_729);
      const small = tenth.keepsTraceId(ids.bytes);
      if (small) {
        kept++;
        assert.ok(half.keepsTraceId(ids.bytes), `trace ${ids.traceId} kept at 0.1 but not at 0.5`);
      }
    }
    // binomial(5000, 0.1): sd 21.2
    assert.ok(Math.abs(kept - 500) < 106, `kept ${kept} of ${n}`);
  });

  it('always keeps failed connects, resets and connections without ids, with th:0, even at always_off', () => {
    const events = {
      failed: tcpEvent({ type: 'failed', errno: 111, localIsn: 0, peerIsn: 0 }),
      reset: tcpEvent({ type: 'close', end: 'reset', errno: 104 }),
      noIsns: tcpEvent({ type: 'close', end: 'fin', localIsn: 0, peerIsn: 0 }),
    };
    const off = new ConnectionSampler({ sampler: 'always_off', ratio: 0, source: 'test' });
    const tiny = new ConnectionSampler(ratio(2 ** -56));
    for (const [what, event] of Object.entries(events)) {
      assert.equal(off.decide(event), ALWAYS_KEPT_TRACE_STATE, what);
      assert.equal(tiny.decide(event), ALWAYS_KEPT_TRACE_STATE, what);
    }
    const plain = tcpEvent();
    assert.equal(off.decide(plain), null, 'always_off keeps nothing else');
    assert.equal(off.keep([plain, events.failed, plain, events.reset]).length, 2);
  });

  it('makes no decision by default or with always_on: everything kept, no trace state', () => {
    for (const cfg of [resolveSampling(undefined, {}), resolveSampling(undefined, { OTEL_TRACES_SAMPLER: 'always_on' })]) {
      const sampler = new ConnectionSampler(cfg);
      assert.equal(sampler.active, false);
      const events = [tcpEvent(), tcpEvent({ type: 'failed', localIsn: 0, peerIsn: 0 })];
      assert.equal(sampler.keep(events), events, 'the same array, untouched');
      assert.equal(sampler.decide(events[0] as TcpEvent), undefined);
    }
  });

  it('keeps everything with th:0 at ratio 1, and parentbased_traceidratio decides as traceidratio', () => {
    const one = new ConnectionSampler(ratio(1));
    const pb = new ConnectionSampler(resolveSampling(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }));
    const quarter = new ConnectionSampler(ratio(0.25));
    for (let i = 0; i < 200; i++) {
      const { connect } = connection(i);
      assert.equal(one.decide(connect), 'ot=th:0');
      assert.equal(pb.decide(connect), quarter.decide(connect));
      assert.equal(quarter.decide(connect), keptByHex(connect, 0.25) ? 'ot=th:c' : null);
    }
  });
});

describe('resolveSampling', () => {
  it('reads --sample over OTEL_TRACES_SAMPLER, and the variable with its argument', () => {
    const env = { OTEL_TRACES_SAMPLER: 'always_off' };
    assert.deepEqual(resolveSampling('0.5', env), { sampler: 'traceidratio', ratio: 0.5, source: '--sample' });
    assert.deepEqual(resolveSampling(undefined, env), { sampler: 'always_off', ratio: 0, source: 'OTEL_TRACES_SAMPLER' });
    assert.deepEqual(resolveSampling(undefined, { OTEL_TRACES_SAMPLER: ' TraceIdRatio ', OTEL_TRACES_SAMPLER_ARG: '1e-3' }), {
      sampler: 'traceidratio',
      ratio: 0.001,
      source: 'OTEL_TRACES_SAMPLER',
    });
    assert.equal(resolveSampling(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio' }).ratio, 1, 'no argument: 1, as the specification says');
    assert.equal(resolveSampling(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_always_on', OTEL_TRACES_SAMPLER_ARG: 'ignored' }).ratio, 1);
    assert.equal(resolveSampling(undefined, { OTEL_TRACES_SAMPLER: '' }).source, 'default', 'empty counts as unset');
    assert.equal(resolveOtlpConfig({ sample: '.25' }, {}).sampling.ratio, 0.25, 'through the OTLP config');
  });

  it('refuses bad values with a one-line UsageError naming the flag or variable', () => {
    const bad: [string | undefined, Record<string, string>, RegExp][] = [
      ['1.5', {}, /^argument --sample: expected a ratio from 0 to 1, got '1.5'$/],
      ['half', {}, /^argument --sample: expected a ratio/],
      ['', {}, /^argument --sample: expected a ratio/],
      ['-0.1', {}, /^argument --sample/],
      [undefined, { OTEL_TRACES_SAMPLER: 'sometimes' }, /^OTEL_TRACES_SAMPLER: unknown sampler 'sometimes' \(expected always_on, always_off, traceidratio/],
      [undefined, { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, /^OTEL_TRACES_SAMPLER: 'jaeger_remote' is not supported here/],
      [undefined, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '50%' }, /^OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got '50%'$/],
      [undefined, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: 'NaN' }, /^OTEL_TRACES_SAMPLER_ARG/],
    ];
    for (const [flag, env, re] of bad) {
      assert.throws(() => resolveSampling(flag, env), (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'), `${flag} ${JSON.stringify(env)}`);
    }
  });

  it('is said in the startup line', () => {
    assert.match(describeOtlpConfig(resolveOtlpConfig({ sample: '0.1' }, {})), /; sampler traceidratio 0\.1 from --sample, ot=th:e666 \(failed and reset connections always kept\)$/);
    assert.match(describeOtlpConfig(resolveOtlpConfig({}, {})), /; sampler parentbased_always_on \(every connection kept\)$/);
  });
});
