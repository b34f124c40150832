/**
 * Command-line flags, bcc tcptracer's plus -u, --json and the OTLP service mode,
 * resolved once into one typed object. Throws UsageError on anything invalid.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';
import type { TracerOptions } from './tracer.ts';

/** The flags; the filters (-p, -u, -N, -4/-6, --cgroupmap, --mntnsmap) are the tracer's own options. */
export interface CliOptions extends Pick<TracerOptions, 'pid' | 'uid' | 'netns' | 'family' | 'cgroupMap' | 'mntnsMap'> {
  timestamp: boolean;
  verbose: boolean;
  json: boolean;
  /** --otlp: export every event as an OTLP log record. */
  otlp: boolean;
  /** -q: no table / JSON on stdout. */
  quiet: boolean;
  otlpEndpoint?: string;
  otlpQueueSize?: number;
  /** --otlp-signals (validated by the OTLP config, with TCPTRACER_OTLP_SIGNALS). */
  otlpSignals?: string;
  /** --sample RATIO (validated by the OTLP config, over OTEL_TRACES_SAMPLER): src/otlp/sampling.ts. */
  sample?: string;
  /** --metrics-cardinality-limit (validated by the OTLP config, with TCPTRACER_METRICS_CARDINALITY_LIMIT). */
  metricsCardinalityLimit?: string;
  /**
   * --ringbuf-size or TCPTRACER_RINGBUF_BYTES: kernel ring buffer size, a power
   * of two >= 4096. Default 8 MiB, or 16 MiB with --otlp exporting logs or traces (src/defaults.ts: there it is the export queue).
   */
  ringbufBytes?: number;
  /** --failed: also report connects that never established (F rows, `failed` type). */
  failed: boolean;
  /** --trace-self: also trace the tracer's own connections (its OTLP exports). */
  traceSelf: boolean;
  /** false with --no-identity: no container/pod lookup (container_id, pod_uid). */
  identity: boolean;
  /**
   * TCPTRACER_IDENTITY_WAIT_MS: longest a batch waits for the identity of a
   * cgroup seen for the first time (default 250 ms; slow or emulated hosts).
   */
  identityWaitMs?: number;
  /** --user: who the tracer becomes once the probe is attached (default `nobody`; `root` keeps root). */
  user: string;
  help: boolean;
  version: boolean;
}

export const USAGE =
  'usage: tcptracer [-h] [-t] [-p PID] [-u UID] [-N NETNS] [--cgroupmap CGROUPMAP]\n' +
  '                 [--mntnsmap MNTNSMAP] [-4 | -6] [-v] [--json] [--failed]\n' +
  '                 [--otlp] [-q] [--otlp-endpoint URL] [--otlp-queue-size N]\n' +
  '                 [--otlp-signals LIST] [--metrics-cardinality-limit N]\n' +
  '                 [--sample RATIO] [--ringbuf-size BYTES] [--trace-self]\n' +
  '                 [--user NAME] [--no-identity] [--version]';

export const HELP = `${USAGE}

Trace TCP connections

options:
  -h, --help            show this help message and exit
  -t, --timestamp       include timestamp on output
  -p PID, --pid PID     trace this PID only
  -u UID, --uid UID     trace this UID only
  -N NETNS, --netns NETNS
                        trace this Network Namespace only
  --cgroupmap CGROUPMAP
                        trace cgroups in this BPF map only
  --mntnsmap MNTNSMAP   trace mount namespaces in this BPF map only
  -4, --ipv4            trace IPv4 family only
  -6, --ipv6            trace IPv6 family only
  -v, --verbose         include Network Namespace in the output
  --json                print one JSON object per event (banner on stderr)
  --failed              also report connects that never established (type F,
                        with the error: refused, timed out, unreachable)
  --otlp                export events as OTLP log records and connections as
                        spans over gRPC
  -q, --quiet           no table or JSON output (with --otlp: run as a service)
  --otlp-endpoint URL   OTLP gRPC endpoint (overrides OTEL_EXPORTER_OTLP_*ENDPOINT;
                        default http://localhost:4317)
  --otlp-queue-size N   records held in memory for export (default 4096); the
                        kernel ring buffer queues the rest
  --sample RATIO        export the records and spans of this share of the
                        connections (0 to 1), the same ones on every host;
                        failed and reset connections always (over
                        OTEL_TRACES_SAMPLER; default all)
  --otlp-signals LIST   what --otlp exports, a list of logs, traces, metrics
                        (default logs,traces)
  --metrics-cardinality-limit N
                        most series of one metric per traced process, the
                        overflow series included (default 2000)
  --ringbuf-size BYTES  kernel ring buffer, a power of two: 8M, 64M... (default
                        8M, 16M with --otlp; locked kernel memory)
  --trace-self          also trace this tracer's own connections
  --user NAME           once the probe is attached, run as this user (default
                        nobody; root keeps root)
  --no-identity         do not look up each event's container and pod
  --version             print the version and exit

examples:
    tcptracer                   # trace all TCP established connections
    tcptracer -t                # include timestamps
    tcptracer -p 181            # only trace PID 181
    tcptracer -u 1000           # only trace UID 1000
    tcptracer -N 4026531969     # only trace sockets in this network namespace
    tcptracer -4                # only trace IPv4
    tcptracer -v                # type as a word, and the NETNS column
    tcptracer --json            # one JSON object per line
    tcptracer --failed          # also refused / timed-out connects (F rows)
    tcptracer --cgroupmap /sys/fs/bpf/test01  # only trace cgroups in this BPF map
    tcptracer --mntnsmap /sys/fs/bpf/mnt_ns   # only trace mount namespaces in the map
    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 tcptracer --otlp -q
`;

function uint(flag: string, value: string | undefined, max: number, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > max || Number(value) < min) {
    throw new UsageError(`argument ${flag}: invalid value '${value}' (expected an integer from ${min} to ${max})`);
  }
  return Number(value);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 };

/** A ring buffer size: bytes, or with a K/M/G (KiB/MiB/GiB) suffix; a power of two from 4 KiB to 1 GiB. */
function ringbufBytes(source: string, value: string | undefined): number | undefined {
  if (value === undefined || (value === '' && source.startsWith('TCPTRACER_'))) return undefined;
  const m = /^(\d+)([kmg]?)(?:i?b)?$/i.exec(value);
  const n = m ? Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  if (!(n >= 4096 && n <= 1 << 30) || (n & (n - 1)) !== 0) {
    throw new UsageError(`${source}: invalid value '${value}' (expected a power of two from 4096 to 1073741824, e.g. 65536, 8M, 64M)`);
  }
  return n;
}

function nonEmpty(flag: string, value: string | undefined): string | undefined {
  if (value === '') throw new UsageError(`argument ${flag}: expected a value`);
  return value;
}

export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        timestamp: { type: 'boolean', short: 't' },
        pid: { type: 'string', short: 'p' },
        uid: { type: 'string', short: 'u' },
        netns: { type: 'string', short: 'N' },
        cgroupmap: { type: 'string' },
        mntnsmap: { type: 'string' },
        ipv4: { type: 'boolean', short: '4' },
        ipv6: { type: 'boolean', short: '6' },
        verbose: { type: 'boolean', short: 'v' },
        json: { type: 'boolean' },
        otlp: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        'otlp-endpoint': { type: 'string' },
        'otlp-queue-size': { type: 'string' },
        'otlp-signals': { type: 'string' },
        sample: { type: 'string' },
        'metrics-cardinality-limit': { type: 'string' },
        'ringbuf-size': { type: 'string' },
        failed: { type: 'boolean' },
        'trace-self': { type: 'boolean' },
        version: { type: 'boolean' },
        user: { type: 'string' },
        'no-identity': { type: 'boolean' },
      },
    }));
  } catch (e) {
    // keep the first sentence of node's message, drop its advice
    const message = (e as Error).message.split(/\n|\. To specify/)[0] ?? 'bad arguments';
    throw new UsageError(message.replace(/\.$/, ''));
  }
  if (values.ipv4 && values.ipv6) throw new UsageError('argument -6/--ipv6: not allowed with argument -4/--ipv4');
  if (values.json && values.quiet) throw new UsageError('--json and -q/--quiet contradict each other');
  if (!values.otlp && (values['otlp-endpoint'] !== undefined || values['otlp-queue-size'] !== undefined || values['otlp-signals'] !== undefined)) {
    throw new UsageError('--otlp-endpoint, --otlp-queue-size and --otlp-signals need --otlp');
  }
  if (!values.otlp && values.sample !== undefined) throw new UsageError('--sample needs --otlp');
  if (!values.otlp && values['metrics-cardinality-limit'] !== undefined) throw new UsageError('--metrics-cardinality-limit needs --otlp');
  for (const flag of ['cgroupmap', 'mntnsmap'] as const) {
    if (values[flag] === '') throw new UsageError(`argument --${flag}: expected a path`);
  }
  return {
    help: values.help ?? false,
    timestamp: values.timestamp ?? false,
    verbose: values.verbose ?? false,
    json: values.json ?? false,
    pid: uint('-p/--pid', values.pid, 4194304, 1),
    uid: uint('-u/--uid', values.uid, 0xfffffffe),
    netns: uint('-N/--netns', values.netns, 0xffffffff, 1),
    family: values.ipv4 ? 4 : values.ipv6 ? 6 : undefined,
    cgroupMap: values.cgroupmap,
    mntnsMap: values.mntnsmap,
    otlp: values.otlp ?? false,
    quiet: values.quiet ?? false,
    otlpEndpoint: values['otlp-endpoint'],
    otlpQueueSize: uint('--otlp-queue-size', values['otlp-queue-size'], 1 << 24, 1),
    otlpSignals: values['otlp-signals'],
    sample: values.sample,
    metricsCardinalityLimit: values['metrics-cardinality-limit'],
    ringbufBytes:
      values['ringbuf-size'] !== undefined
        ? ringbufBytes('argument --ringbuf-size', values['ringbuf-size'])
        : ringbufBytes('TCPTRACER_RINGBUF_BYTES', env.TCPTRACER_RINGBUF_BYTES),
    failed: values.failed ?? false,
    traceSelf: values['trace-self'] ?? false,
    version: values.version ?? false,
    user: nonEmpty('--user', values.user) ?? 'nobody',
    identity: !(values['no-identity'] ?? false),
    identityWaitMs: env.TCPTRACER_IDENTITY_WAIT_MS ? uint('TCPTRACER_IDENTITY_WAIT_MS', env.TCPTRACER_IDENTITY_WAIT_MS, 60_000) : undefined,
  };
}
