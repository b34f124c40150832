/**
 * The event layout is defined once, in bpf/tcptracer.h. The TypeScript decoder's
 * mirror must match what the BPF compiler made of it (the loader exports the
 * struct's members from the probe's BTF), and the struct must have no hidden
 * padding (another language decodes it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EVENT_LAYOUT } from '../src/event.ts';
import { loadNative } from '../src/native.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const built = existsSync(join(ROOT, 'build/Release/tcptracer_loader.node'));

test("src/event.ts matches the offsets and sizes in the compiled probe's BTF", { skip: !built && 'npm run build first' }, () => {
  const native = loadNative().eventLayout;
  assert.equal(EVENT_LAYOUT.size, native.size);
  assert.deepEqual(
    Object.fromEntries(Object.entries(EVENT_LAYOUT.fields).map(([k, v]) => [k, [...v]])),
    native.fields,
  );
});

test('struct tcptracer_event has no implicit padding (-Wpadded) and a size multiple of 8', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tt-layout-'));
  const src = join(dir, 'check.c');
  writeFileSync(
    src,
    `#include <linux/types.h>
#include "${ROOT}bpf/tcptracer.h"
_Static_assert(sizeof(struct tcptracer_event) % 8 == 0, "size");
_Static_assert(sizeof(struct tcptracer_event) == ${EVENT_LAYOUT.size}, "size matches src/event.ts");
struct tcptracer_event e;
struct tcptracer_config c;
`,
  );
  const r = spawnSync('cc', ['-Wpadded', '-Werror', '-c', src, '-o', join(dir, 'check.o')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('every field is naturally aligned and fields tile the struct without gaps', () => {
  const fields = Object.values(EVENT_LAYOUT.fields).toSorted((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [off, size] of fields) {
    assert.equal(off, end, `gap before offset ${off}`);
    const align = [2, 4, 8].includes(size) ? size : 1; // byte arrays (addresses, comm) align to 1
    assert.equal(off % align, 0, `offset ${off} aligned to ${align}`);
    end = off + size;
  }
  assert.equal(end, EVENT_LAYOUT.size);
});
