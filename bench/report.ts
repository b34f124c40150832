/**
 * The human report and docs/benchmarks.md (with bench/analysis.md, the
 * hand-written part), from the figures in bench/results.ts. Targets:
 * bench/targets.ts; the scenarios' sections: bench/scenarios.ts.
 */
import { readFileSync } from 'node:fs';
import { isOtlp } from './configs.ts';
import type { PipelineResult } from './pipeline.ts';
import type { BenchReport, ConfigSummary, ProfileReport, RecordCost, Target } from './results.ts';
import { scenarioSection } from './scenarios.ts';
import { f1, k, lossCell, mdTable, rssCell, sp, table, textTable } from './tables.ts';


function rows(configs: readonly ConfigSummary[]): string[][] {
  const header = [
    'configuration',
    'conn/s median (min–max)',
    'x untraced',
    'loadgen µs/conn',
    'events expected / received',
    'lost (ringbuf)',
    'tracer µs/event',
    'peak RSS MB (ring buffer mapping, anonymous peak)',
    'catch-up s',
    'other CPU %',
  ];
  const out = [header];
  for (const s of configs) {
    if (!s.available || !s.runs) {
      out.push([s.label, s.available ? 'failed (see below)' : 'unavailable (see below)', '', '', '', '', '', '', '', '']);
      continue;
    }
    const traced = s.config !== 'untraced';
    const lost = lossCell(s);
    out.push([
      s.label,
      sp(s.connPerSec, k),
      s.ratioToUntraced === undefined ? '-' : s.ratioToUntraced.toFixed(2),
      `${sp(s.loadgenUsPerConn, (v) => v.toFixed(1))}${s.loadgenVsUntracedPct !== undefined && traced ? ` ${s.loadgenVsUntracedPct >= 0 ? '+' : ''}${s.loadgenVsUntracedPct.toFixed(0)}%` : ''}`,
      traced ? `${s.expectedEvents} / ${s.receivedEvents}${s.expectedEvents === s.receivedEvents ? '' : ' MISMATCH'}` : '-',
      traced ? lost || '-' : '-',
      traced ? `${sp(s.tracerUsPerEvent, (v) => v.toFixed(2))}${s.tracerSysUsPerEvent ? ` sys ${s.tracerSysUsPerEvent.median.toFixed(2)}` : ''}` : '-',
      traced ? rssCell(s) : '-',
      traced ? sp(s.catchUpS, (v) => v.toFixed(1)) : '-',
      sp(s.otherCpuPct, (v) => v.toFixed(0)),
    ]);
  }
  return out;
}

/** Why a configuration has no figures, and failed rounds. */
function notes(configs: readonly ConfigSummary[]): string[] {
  const out: string[] = [];
  for (const s of configs) {
    if (!s.available) out.push(`${s.label}: unavailable: ${s.reason ?? ''}`);
    if (s.failures.length) out.push(`${s.label}: ${s.failures.join('; ')}`);
  }
  return out;
}

/** A warning when other processes loaded the machine during the runs. */
function noise(r: BenchReport): string[] {
  const out: string[] = [];
  if (r.interference.length) {
    out.push(`other processes held BPF programs (their probes add kernel work to every connection): ${r.interference.length} processes, e.g. ${r.interference.slice(0, 2).join('; ')}`);
  }
  const worst = Math.max(0, ...r.configs.map((c) => c.otherCpuPct?.max ?? 0));
  if (worst > 5) out.push(`other processes used up to ${worst.toFixed(0)}% of all CPUs during the runs (column "other CPU %"): throughput figures are unreliable`);
  return out;
}

function targetRows(targets: readonly Target[]): string[][] {
  return [['', 'target', 'config', 'value', 'goal', 'margin'], ...targets.map((t) => [t.status, t.name, t.config, t.value, t.target, t.margin])];
}

function otlpLines(configs: readonly ConfigSummary[], pipeline: PipelineResult, cost: RecordCost | undefined): string[] {
  const lines: string[] = [];
  for (const o of configs.filter((c) => isOtlp(c.config) && c.runs)) {
    lines.push(
      `${o.label} end to end: ${sp(o.otlpRecordsPerSec, k)} log records/s delivered${o.spansReceived !== undefined ? `, spans ${o.spansReceived} of ${o.spansExpected ?? 0}` : ''}; ` +
        `delay kernel -> receiver p50 ${sp(o.otlpDelayP50Ms, (v) => v.toFixed(0))} ms, p99 ${sp(o.otlpDelayP99Ms, (v) => v.toFixed(0))} ms; ` +
        `missing ${o.expectedEvents - o.receivedEvents} log records: lost in the ring buffer ${o.ringbufLost ?? 0}, otlp dropped ${o.otlpDropped ?? 0}` +
        unaccounted(o),
    );
  }
  if (pipeline.available) {
    lines.push(
      `OTLP pipeline alone (OtlpSink fed synthetic events, no kernel): ${k(pipeline.recordsPerSec)} records/s, ${pipeline.delivered}/${pipeline.records} delivered, ` +
        `${pipeline.cpuUsPerRecord.toFixed(1)} µs CPU/record, peak RSS ${pipeline.peakRssMB.toFixed(0)} MB, ` +
        `dropped ${pipeline.droppedQueueFull + pipeline.droppedExportFailed}, delay p50 ${pipeline.delayP50Ms.toFixed(0)} ms / p99 ${pipeline.delayP99Ms.toFixed(0)} ms`,
    );
  } else {
    lines.push(`OTLP pipeline alone: unavailable: ${pipeline.reason ?? ''}`);
  }
  if (cost?.encoder) {
    const us = (v: number): string => `${v.toFixed(2)} µs`;
    const e = cost.encoder;
    const s = cost.sdk;
    const bytes =
      e.bytesPerRecord === s.bytesPerRecord && cost.sameBytes
        ? `${e.bytesPerRecord.toFixed(0)} bytes/record both ways, byte for byte the same`
        : `BYTES DIFFER: encoder ${e.bytesPerRecord.toFixed(1)}, SDK ${s.bytesPerRecord.toFixed(1)} bytes/record${cost.sameBytes ? '' : ', a batch encoded both ways differs'}`;
    lines.push(
      `One log record, no network (bench/otlp-record-cost.ts, ${cost.records} records a pass, medians of ${cost.passes} interleaved passes): ` +
        `the tracer's path (src/otlp/wire/requests.ts) mapping ${us(e.mappingUs)}, connection ids ${us(e.idsUs)}, LogsEncoder.encode ${us(e.encodeUs)}: ${us(e.totalUs)} in all; ` +
        `the SDK's stock path, as reference: mapping ${us(s.mappingUs)}, connection ids and span context ${us(s.idsUs)}, Logger.emit ${us(s.emitUs)}, ProtobufLogsSerializer ${us(s.serializeUs)}: ${us(s.totalUs)} in all; ` +
        `encoder / SDK ${cost.ratio.toFixed(2)}x; ${bytes}`,
    );
  }
  return lines;
}

/** What did not arrive and no counter accounts for (counters include the few events of other processes). */
function unaccounted(s: ConfigSummary): string {
  const n = s.expectedEvents - s.receivedEvents - (s.ringbufLost ?? 0) - (s.otlpDropped ?? 0);
  return n === 0 ? ', all accounted for' : `, ${n > 0 ? 'unaccounted' : 'counted beyond the missing'} ${Math.abs(n)}${s.probeMissed ? ` (probe runs skipped ${s.probeMissed})` : ''}`;
}

/** Spans' cost: the same workload in the same rounds with logs only and with logs and traces. */
function spanCost(configs: readonly ConfigSummary[], md: boolean): string[] {
  const logs = configs.find((c) => c.config === 'otlp');
  const both = configs.find((c) => c.config === 'otlp-traces');
  if (!logs?.runs || !both?.runs) return [];
  const d = (a: number | undefined, b: number | undefined, unit: string, digits: number): string =>
    a === undefined || b === undefined ? '-' : `${b - a >= 0 ? '+' : ''}${(b - a).toFixed(digits)}${unit} (${a ? `${b >= a ? '+' : ''}${((100 * (b - a)) / a).toFixed(0)}%` : '-'})`;
  const perConn = (s: ConfigSummary): number | undefined => s.tracerUsPerConn?.median;
  const sysPerConn = (s: ConfigSummary): number | undefined =>
    s.tracerSysUsPerEvent && s.connections ? (s.tracerSysUsPerEvent.median * s.expectedEvents) / s.connections : undefined;
  const t = [
    ['', 'logs', 'logs,traces', 'difference'],
    ['tracer CPU per connection delivered, µs', sp(logs.tracerUsPerConn, (v) => v.toFixed(1)), sp(both.tracerUsPerConn, (v) => v.toFixed(1)), d(perConn(logs), perConn(both), ' µs', 1)],
    ['of which system, µs', f1(sysPerConn(logs)), f1(sysPerConn(both)), d(sysPerConn(logs), sysPerConn(both), ' µs', 1)],
    ['log records delivered / expected', `${logs.receivedEvents} / ${logs.expectedEvents}`, `${both.receivedEvents} / ${both.expectedEvents}`, ''],
    ['spans delivered / expected', '-', `${both.spansReceived ?? 0} / ${both.spansExpected ?? 0}`, ''],
    ['lost in the ring buffer', String(logs.ringbufLost ?? 0), String(both.ringbufLost ?? 0), ''],
    ['peak RSS (ring buffer mapping, anonymous peak), MB', rssCell(logs), rssCell(both), d(logs.peakRssMB, both.peakRssMB, ' MB', 0)],
    ['conn/s while traced', sp(logs.connPerSec, k), sp(both.connPerSec, k), d(logs.connPerSec?.median, both.connPerSec?.median, '', 0)],
    ['catch-up after the workload, s', sp(logs.catchUpS, (v) => v.toFixed(1)), sp(both.catchUpS, (v) => v.toFixed(1)), ''],
  ];
  return [
    md ? '### What spans cost' : "Spans' cost (same workload, same rounds):",
    ...(md
      ? [
          '',
          `\`--otlp-signals logs\` against \`--otlp-signals logs,traces\` (one span per connection end, at its X), interleaved in the same rounds on the same workload. Tracer CPU per connection = its CPU from workload start until it caught up, divided by the connections whose log records it delivered (log records / ${logs.connections ? (logs.expectedEvents / logs.connections).toFixed(0) : '4'}): the difference is what the 2 spans of a connection cost.`,
          '',
        ]
      : []),
    table(t, md),
    '',
  ];
}

function profileLines(p: ProfileReport, md: boolean): string[] {
  const perEvent = (s: number): string => (p.events ? `${((s * 1e6) / p.events).toFixed(2)} µs/event` : '');
  const threads = Object.entries(p.threadCpuS)
    .filter(([, s]) => p.events > 0 && (s * 1e6) / p.events >= 0.005)
    .sort((a, b) => b[1] - a[1])
    .map(([n, s]) => `${n} ${perEvent(s)}`)
    .join(', ');
  const lines = [
    `${md ? '**' : ''}${p.mode}${md ? '**' : ''}: ${p.events} events, tracer CPU ${perEvent(p.tracerCpuS)} under the profiler (threads: ${threads}); main thread busy ${p.summary.busyMs.toFixed(0)} ms sampled.`,
  ];
  const areas = p.summary.areas
    .slice(0, 8)
    .map((a) => `${a.area} ${a.pct.toFixed(0)}%`)
    .join(', ');
  lines.push(`${md ? '' : '  '}By area: ${areas}.`);
  if (md) {
    lines.push('', mdTable([['self %', 'function', 'where', 'area'], ...p.summary.top.map((f) => [f.pct.toFixed(1), `\`${f.name}\``, f.where, f.area])]), '');
  } else {
    lines.push(`  Top self time: ${p.summary.top.slice(0, 8).map((f) => `${f.name} ${f.where} ${f.pct.toFixed(1)}%`).join('; ')}`);
  }
  return lines;
}

export function humanReport(r: BenchReport): string {
  const w = r.workload;
  const lines = [
    '',
    `tcptracer-otel benchmark (${r.mode}): ${r.machine.cpu}, ${r.machine.cores} cores, Linux ${r.machine.kernel}, Node ${r.machine.node}, ${r.machine.date}`,
    `workload: ${w.connectionsPerRun} connections per run (${w.threads} loadgen threads, loopback${w.netns ? ' in a fresh netns' : ''}), ` +
      `${w.eventsPerConnection} events per connection (C, A, X, X), ${w.rounds} interleaved rounds; medians with (min–max)`,
  ];
  for (const n of noise(r)) lines.push(`WARNING: ${n}`);
  lines.push('', textTable(rows(r.configs)), '');
  lines.push(...notes(r.configs));
  lines.push(...otlpLines(r.configs, r.pipeline, r.recordCost), '');
  lines.push(...spanCost(r.configs, false));
  for (const sc of r.scenarios) lines.push(...scenarioSection(sc, false));
  lines.push('Targets:', textTable(targetRows(r.targets)), '');
  if (r.profiles.length) {
    lines.push('Where the tracer time goes (V8 CPU profile of the workload, one extra run per mode, not part of the figures above):');
    for (const p of r.profiles) lines.push(...profileLines(p, false));
    lines.push('');
  }
  const pass = r.targets.filter((t) => t.status === 'PASS').length;
  const miss = r.targets.filter((t) => t.status === 'MISS').length;
  lines.push(`${pass} targets PASS, ${miss} MISS, ${r.targets.length - pass - miss} N/A; ${r.durationS.toFixed(0)} s`);
  return lines.join('\n');
}

/** The Method section's bullets. */
function method(r: BenchReport): string[] {
  const w = r.workload;
  const f = r.features;
  const out = [
    `Workload: \`bench/loadgen.c\` (built by the bench with \`cc\` into bench/out/), ${w.threads} threads (one per CPU), each with its own listener on 127.0.0.1 in a fresh network namespace, doing connect, accept, server close, client read-EOF, client close with SO_LINGER 0: no TIME_WAIT, no port exhaustion. ${w.connectionsPerRun} connections per run` +
      (w.calibratedConnPerSec ? ` (calibrated from an untraced ${k(w.calibratedConnPerSec)} conn/s warm-up)` : '') +
      ". The load generator reports wall time and its own CPU time (getrusage: user + system, both ends of every connection, where the probe's kernel-side cost lands).",
    `Expected events: ${w.eventsPerConnection} per connection. From the probe's semantics (bpf/tcptracer.bpf.c): C when the client reaches ESTABLISHED, A at accept4() exit, X when the server closes (ESTABLISHED -> FIN_WAIT1) and X when the client closes (CLOSE_WAIT -> CLOSE, RST). With traces, also 2 spans per connection (one per end, at its X). Received = events whose comm is \`loadgen\`; anything else on the host is excluded.`,
    `The tracer measured: \`${w.cli ?? 'node src/cli.ts'}\`` +
      (w.cli?.includes('dist/') ? ' (the installed bin: tsc output, as `npx tcptracer` and the Docker image run it).' : '.'),
    `${w.rounds} rounds, configurations interleaved in each round (${r.configs.map((c) => c.config).join(', ')}); medians with (min–max). Then the scenarios (below), each with its own workload.`,
    'Tracers are started and their banner awaited before the workload; after it, the bench waits until the tracer stops delivering (the "catch-up" column), samples its CPU time (utime + stime from /proc, from workload start: start-up excluded) and peak RSS (VmHWM; in brackets the part that is the BPF ring buffer\'s mapping, from /proc/PID/smaps, and the largest anonymous RSS, heap and buffers, sampled every 200 ms), then sends SIGINT and waits for it to drain and exit.',
    "table and --json write to a file on tmpfs (counted afterwards); --otlp -q exports to `bench/otlp-receiver.ts` (a counting OTLP/gRPC receiver in its own process serving LogsService and TraceService, which reads each log record's time_unix_nano to measure the delay, and counts spans by kind), once with `--otlp-signals logs` and once with `--otlp-signals logs,traces` (the default), every other setting at the CLI's default; bpftrace runs `bench/tcptracer.bt` (same tracepoints and socket logic); the C floor (`bench/floor.c`) loads build/Release/tcptracer.bpf.o through the loader's libbpf skeleton with its table-mode settings (cfg in .rodata, 8 MiB ring buffer, 64 KiB wake-up threshold, 100 ms poll) and only counts.",
  ];
  if (f?.ringbufSize) {
    out.push(
      "What the CLI's defaults change in these figures: with --otlp the kernel ring buffer (64 MiB by default, `--ringbuf-size`) is the export queue, read only as fast as the export takes events. A workload faster than the export fills it and events are then lost there, counted in \"lost (ringbuf)\", where before they were dropped from the JS queue (\"otlp dropped\"); the tracer keeps exporting what the ring buffer holds after the workload ended (\"catch-up\", its CPU counted until then), and the delay is the time events waited in that queue. The ring buffer's data area is mapped twice in a row into the reader (so that records can wrap), so once read through it shows in RSS as twice its size (128 MB for 64 MiB of kernel memory, allocated once): the \"ring\" part of peak RSS. Table and JSON keep the 8 MiB ring buffer, as the floor.",
    );
  }
  if (f?.traceSelf) {
    out.push("The tracer leaves its own process out in the kernel (`--trace-self` brings it back): its gRPC connection to the receiver is no longer among its events. None of the figures counted it (received = comm `loadgen`), only the per-event CPU's denominator (all events delivered) loses those few.");
  }
  if (f && !f.otlpSignals) out.push('The CLI has no `--otlp-signals` yet (no spans): the logs,traces configuration could not run.');
  return out;
}

/** The hand-written analysis (bench/analysis.md), dated, because unlike the rest it is not regenerated. */
function analysis(): string {
  try {
    return readFileSync(new URL('analysis.md', import.meta.url), 'utf8');
  } catch (e) {
    return `(bench/analysis.md unreadable: ${(e as Error).message})\n`;
  }
}

export function markdown(r: BenchReport, command: string): string {
  const m = r.machine;
  const out = [
    '# Benchmarks',
    '',
    `<!-- Generated by \`${command}\` (bench/run.ts). Do not edit by hand: run it again. -->`,
    '',
    `Generated by \`${command}\` on ${m.date} (${r.mode} mode, ${r.durationS.toFixed(0)} s).`,
    '',
    '## Machine',
    '',
    mdTable([
      ['CPU', 'cores', 'memory', 'kernel', 'Node', 'bpftrace'],
      [m.cpu, String(m.cores), `${m.memoryGB.toFixed(0)} GB`, m.kernel, m.node, m.bpftrace],
    ]),
    '',
  ];
  for (const n of noise(r)) out.push(`> **Warning:** ${n}.`, '');
  out.push('## Method', '', ...method(r).map((l) => `- ${l}`), '');
  out.push(
    '## Results',
    '',
    mdTable(rows(r.configs)),
    '',
    ...otlpLines(r.configs, r.pipeline, r.recordCost).map((l) => `- ${l}`),
    '',
  );
  out.push(...spanCost(r.configs, true));
  const n = notes(r.configs);
  if (n.length) out.push(...n.map((l) => `- ${l}`), '');
  const threadRows = r.configs.filter((s) => s.threadUsPerEvent && Object.keys(s.threadUsPerEvent).length);
  if (threadRows.length) {
    out.push(
      'Tracer CPU per event (median, µs), split user/system and by thread. In the CLI, `main` is the JavaScript thread, `drain` the native loader\'s ring buffer thread (it inherits the main thread\'s name), `node-V8Worker` V8\'s helper threads (concurrent GC, compilation):',
      '',
    );
    out.push(
      mdTable([
        ['configuration', 'total', 'of which system (kernel)', 'by thread'],
        ...threadRows.map((s) => [
          s.label,
          (s.tracerUsPerEvent?.median ?? 0).toFixed(2),
          (s.tracerSysUsPerEvent?.median ?? 0).toFixed(2),
          Object.entries(s.threadUsPerEvent ?? {})
            .sort((a, b) => b[1] - a[1])
            .map(([n, v]) => `${n} ${v.toFixed(2)}`)
            .join(', '),
        ]),
      ]),
      '',
    );
  }
  if (r.scenarios.length) {
    out.push('## Scenarios', '');
    for (const sc of r.scenarios) out.push(...scenarioSection(sc, true));
  }
  out.push('## Targets', '', mdTable(targetRows(r.targets)), '');
  out.push('## Where the time goes', '');
  if (r.profiles.length) {
    out.push(
      'From V8\'s sampling profiler (250 µs) on the CLI during one extra run per mode, started when the workload starts and stopped once the tracer caught up (bench/prof-hook.ts; the profiler thread itself adds CPU, so these runs are not part of the figures above). V8 samples the JavaScript thread only; the per-thread CPU figures show the rest (the loader\'s drain thread runs libbpf and copies records; V8 helper threads do concurrent GC and compilation). Self time, idle excluded:',
      '',
    );
    for (const p of r.profiles) out.push(...profileLines(p, true));
  } else {
    out.push('Profiling was skipped in this run.', '');
  }
  out.push(analysis());
  out.push(
    '## Reproduce',
    '',
    'As root, from a clone (the npm script runs scripts/setup.sh first, which installs clang, libbpf-dev, bpftrace and the rest if missing and builds; the bench compiles bench/loadgen.c and bench/floor.c into bench/out/ itself):',
    '',
    '```sh',
    'npm run bench            # quick: about 4 minutes',
    'npm run bench -- --full  # more rounds, longer runs: about 15 minutes',
    'node bench/run.ts --help # the options; node bench/run.ts skips the setup',
    '```',
    '',
    'The last line of the output is one JSON object with every figure.',
    '',
  );
  return out.join('\n');
}
