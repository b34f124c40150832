/**
 * The footprint's levers that can be checked anywhere: the young generation
 * held near its initial size, the old one's growth bounded and Turbofan
 * left out (src/heap.ts),
 * checked in child processes that allocate like the tracer does (fast, mostly
 * garbage, some survivors); and the ring buffer's default per mode
 * (src/defaults.ts); and that the bin runs node with NODE_FLAGS (the Docker
 * image's ENTRYPOINT: unit-dockerfile).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DEFAULT_OTLP_RINGBUF_BYTES, DEFAULT_RINGBUF_BYTES, defaultRingbufBytes } from '../src/defaults.ts';
import { boundOldGeneration, NODE_FLAGS, skipTopTier } from '../src/heap.ts';

const HEAP = new URL('../src/heap.ts', import.meta.url).href;

/**
 * The old space's peak, MiB, while objects that outlive two scavenges (so are
 * promoted) are replaced in batches, as export requests in flight are; the
 * young generation held small as with --otlp, and boundOldGeneration(percent)
 * or not (undefined).
 */
function oldGenerationPeak(percent: number | undefined): number {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { boundOldGeneration, holdYoungGeneration } from ${JSON.stringify(HEAP)};
    holdYoungGeneration();
    if (${String(percent !== undefined)}) boundOldGeneration(${String(percent)});
    const old = () => (getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_size ?? NaN) / 2 ** 20;
    const ring = new Array(100000);
    let peak = 0;
    for (let batch = 0; batch < 300; batch++) {
      await new Promise((resolve) => setImmediate(resolve));
      for (let i = 0; i < 10000; i++) ring[(batch * 10000 + i) % ring.length] = { i, text: 'event ' + i, fields: [i, i] };
      peak = Math.max(peak, old());
    }
    process.stdout.write(String(peak));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

/** new_space's size, MiB, before and after ~300 MB of short-lived allocations, with or without holdYoungGeneration(). */
function youngGeneration(hold: boolean): { before: number; after: number } {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    import { holdYoungGeneration } from ${JSON.stringify(HEAP)};
    const size = () => (getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? NaN) / 2 ** 20;
    const before = size();
    if (${String(hold)}) holdYoungGeneration();
    const kept = [];
    for (let i = 0; i < 3e6; i++) {
      const o = { i, text: 'event ' + i, fields: new Array(4) };
      if (i % 7 === 0) kept.push(o);
      if (kept.length > 50000) kept.length = 0;
    }
    process.stdout.write(JSON.stringify({ before, after: size() }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { before: number; after: number };
}

describe('footprint', () => {
  it('holdYoungGeneration keeps the young generation small where V8 would grow it', () => {
    const grown = youngGeneration(false);
    const held = youngGeneration(true);
    // V8 starts new space below 1 MiB, may take it to its minimum semi-spaces (2 MiB here), and grows it to 64 MiB
    assert.ok(grown.after >= 16, `without it the workload grows the young generation: ${JSON.stringify(grown)}`);
    assert.ok(held.after <= 4, `held: ${JSON.stringify(held)}`);
  });

  it('boundOldGeneration starts full GCs sooner: the old generation holds less garbage', () => {
    const free = oldGenerationPeak(undefined);
    const bounded = oldGenerationPeak(20);
    assert.ok(bounded > 0 && bounded < 0.6 * free, `old space peak ${bounded.toFixed(1)} MiB bounded, ${free.toFixed(1)} MiB not`);
    assert.throws(() => { boundOldGeneration(0); }, RangeError);
    // node's own flag wins (nothing is set in this process: the flag is found first)
    assert.equal(boundOldGeneration(20, ['--heap-growing-percent=100']), 100);
    assert.equal(boundOldGeneration(20, ['--heap_growing_percent=75']), 75);
  });

  it('the OTLP ring buffer default applies only when events become log records or spans', () => {
    assert.equal(DEFAULT_OTLP_RINGBUF_BYTES, 16 << 20);
    assert.equal(DEFAULT_RINGBUF_BYTES, 8 << 20);
    assert.equal(defaultRingbufBytes(undefined), DEFAULT_RINGBUF_BYTES, 'no OTLP');
    assert.equal(defaultRingbufBytes(['logs', 'traces']), DEFAULT_OTLP_RINGBUF_BYTES);
    assert.equal(defaultRingbufBytes(['logs']), DEFAULT_OTLP_RINGBUF_BYTES);
    assert.equal(defaultRingbufBytes(['traces']), DEFAULT_OTLP_RINGBUF_BYTES);
    assert.equal(defaultRingbufBytes(['metrics']), DEFAULT_RINGBUF_BYTES, 'aggregated signals read as fast as the table');
    assert.equal(defaultRingbufBytes(['metrics', 'traces']), DEFAULT_OTLP_RINGBUF_BYTES);
  });

  it("the CLI's shebang gives node NODE_FLAGS (heap sizes V8 reads only before any script runs)", () => {
    const first = readFileSync(new URL('../src/cli.ts', import.meta.url), 'utf8').split('\n', 1)[0];
    assert.equal(first, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    // node accepts them: a typo would make the bin fail at start
    const r = spawnSync(process.execPath, [...NODE_FLAGS, '-e', ''], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('skipTopTier keeps hot code out of Turbofan, unless node was given its own choice', () => {
    /** Whether a function V8 is told to optimize ends up Turbofan's, with skipTopTier() called or not. */
    const turbofanned = (skip: boolean): boolean => {
      const script = `
        import { skipTopTier } from ${JSON.stringify(HEAP)};
        if (${String(skip)}) skipTopTier();
        function f(a) { return a * 2 + 1; }
        const natives = new Function('f', '%PrepareFunctionForOptimization(f); f(1); f(2); %OptimizeFunctionOnNextCall(f); f(3); return %ActiveTierIsTurbofan(f);');
        process.stdout.write(String(natives(f)));
      `;
      const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout === 'true';
    };
    assert.equal(turbofanned(false), true, 'V8 optimizes with Turbofan by default');
    assert.equal(turbofanned(true), false);
    assert.equal(skipTopTier(['--turbofan']), false);
    assert.equal(skipTopTier(['--max-opt=3']), false);
    assert.equal(skipTopTier(['--max_opt', '3']), false);
  });

  it('collectGarbage runs a full GC: the old generation garbage is gone', () => {
    const script = `
      import { collectGarbage } from ${JSON.stringify(HEAP)};
      let junk = Array.from({ length: 300000 }, (_, i) => ({ i, s: 'x' + i }));
      await new Promise((resolve) => setImmediate(resolve));
      junk = undefined;
      const before = process.memoryUsage().heapUsed;
      collectGarbage();
      process.stdout.write(JSON.stringify({ before, after: process.memoryUsage().heapUsed }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
    assert.ok(before - after > 10 * 2 ** 20, `heap used ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MiB`);
  });
});
