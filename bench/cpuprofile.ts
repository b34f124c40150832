/**
 * Summary of a V8 .cpuprofile (node --cpu-prof): self time per function and per
 * area of the code, idle excluded. Only the JavaScript (main) thread is sampled;
 * the loader's drain thread and V8's helper threads show in the per-thread CPU
 * figures instead.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FunctionCost {
  name: string;
  where: string;
  area: string;
  ms: number;
  /** Share of the busy (non-idle) samples, %. */
  pct: number;
}

export interface ProfileSummary {
  /** Busy (non-idle) sampled time, ms. */
  busyMs: number;
  idleMs: number;
  top: FunctionCost[];
  areas: { area: string; ms: number; pct: number }[];
}

/** Which part of the tracer a frame belongs to, from its script URL. */
function areaOf(f: CallFrame): string {
  const u = f.url;
  if (f.functionName === '(garbage collector)') return 'GC';
  if (f.functionName === '(program)') return 'native / VM (program)';
  if (/^write(Buffer|String|Sync)?$|^writev/.test(f.functionName) && !u.includes('/src/') && !u.includes('/node_modules/')) return 'stdout write (node:fs/streams)';
  if (u.includes('/src/event.ts') || u.includes('/src/event.js')) return 'decode (src/event.ts)';
  if (u.includes('/src/format.ts') || u.includes('/src/format.js')) return 'format (src/format.ts)';
  if (u.includes('/src/cli.ts') || u.includes('/src/cli.js')) return 'cli batch loop (src/cli.ts)';
  if (u.includes('/src/tracer.ts') || u.includes('/src/tracer.js')) return 'tracer (src/tracer.ts)';
  if (u.includes('/src/otlp/traces/ids.')) return 'connection ids (src/otlp/traces/ids.ts)';
  if (u.includes('/src/otlp/')) return 'otlp (src/otlp)';
  if (u.includes('otlp-transformer') || u.includes('protobufjs')) return 'SDK serialization (otlp-transformer)';
  if (u.includes('@grpc')) return 'gRPC (grpc-js)';
  if (u.includes('@opentelemetry')) return 'OpenTelemetry SDK';
  if (u.startsWith('node:internal/fs') || u.includes('streams') || u.startsWith('node:fs') || u.includes('internal/tty')) return 'stdout write (node:fs/streams)';
  if (u.startsWith('node:') || u === '') return f.url === '' ? 'builtins (no script)' : 'node internals';
  return 'other JS';
}

/**
 * @param window only samples taken in [fromUs, toUs] (CLOCK_MONOTONIC µs, the
 *   profile's own clock and process.hrtime's): the workload, not start-up or exit.
 */
export function summarizeProfile(path: string, topN = 12, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parentOf.set(c, n.id);
  }
  /**
   * Code outside src/ and node_modules/ (node: internals, builtins without a
   * script URL) is counted in the area of the src/ or package function that
   * called it (Buffer#toString from decodeBatch is decode, a hash from ids.ts
   * is connection ids), or as stdout write when reached from the stdout
   * stream (Buffer.from of the batch string, the write itself). Builtins are
   * named after their nearest caller with a URL.
   */
  const callers = (id: number): { named: CallFrame | undefined; src: CallFrame | undefined; viaWrite: boolean } => {
    let viaWrite = false;
    let named: CallFrame | undefined;
    for (let q = parentOf.get(id), depth = 0; q !== undefined && depth < 12; q = parentOf.get(q), depth++) {
      const f = byId.get(q)?.callFrame;
      if (!f) break;
      if (f.url && !named) named = f;
      if (/sync_write_stream|internal\/streams|internal\/fs|^node:fs$/.test(f.url)) viaWrite = true;
      if (f.url.includes('/src/') || f.url.includes('/node_modules/')) return { named, src: f, viaWrite };
    }
    return { named, src: undefined, viaWrite };
  };
  // self time per node: each sample gets the time delta that follows it
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  if (samples.length) {
    let t = p.startTime;
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i] ?? 0;
      if (window && (t < window.fromUs || t > window.toUs)) continue;
      const id = samples[i] ?? 0;
      const dt = deltas[i + 1] ?? deltas[i] ?? 0;
      self.set(id, (self.get(id) ?? 0) + dt);
    }
  } else {
    const total = p.endTime - p.startTime;
    const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    for (const n of p.nodes) self.set(n.id, ((n.hitCount ?? 0) * total) / hits);
  }
  let idleUs = 0;
  const fns = new Map<string, { name: string; where: string; area: string; us: number }>();
  const areas = new Map<string, number>();
  for (const [id, us] of self) {
    const f = byId.get(id)?.callFrame;
    if (!f) continue;
    if (f.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    let where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    let name = f.functionName || '(anonymous)';
    let area = areaOf(f);
    const special = name.startsWith('(') && name !== '(anonymous)';
    if (!special && !f.url.includes('/src/') && !f.url.includes('/node_modules/')) {
      const { named, src, viaWrite } = callers(id);
      if (!f.url && named) {
        if (name === '(anonymous)') name = 'builtin';
        where = `in ${named.functionName || '(anonymous)'} (${basename(named.url)}:${named.lineNumber + 1})`;
      }
      if (viaWrite) area = 'stdout write (node:fs/streams)';
      else if (src) area = areaOf(src);
    }
    const key = `${name}@${where}`;
    const cur = fns.get(key) ?? { name, where, area, us: 0 };
    cur.us += us;
    fns.set(key, cur);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busyUs = [...fns.values()].reduce((s, f) => s + f.us, 0) || 1;
  const top = [...fns.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((f) => ({ name: f.name, where: f.where, area: f.area, ms: f.us / 1000, pct: (100 * f.us) / busyUs }));
  return {
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    top,
    areas: [...areas.entries()]
      .filter(([, us]) => us / busyUs >= 0.005)
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, ms: us / 1000, pct: (100 * us) / busyUs })),
  };
}
