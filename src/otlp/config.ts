/**
 * OTLP exporter configuration, resolved once at start from flags and the
 * environment (the standard OTEL_* variables plus TCPTRACER_*).
 *
 * Three signals, each with its own export target: logs (one record per event),
 * traces (one span per connection) and metrics (aggregated in the tracer,
 * src/otlp/metrics/). Precedence for each target setting:
 * flag (`--otlp-endpoint`, for every signal), then the signal's variable
 * (OTEL_EXPORTER_OTLP_{LOGS,TRACES,METRICS}_*), then the generic
 * one (OTEL_EXPORTER_OTLP_*), then the default, as the OpenTelemetry
 * specification defines them. An empty variable counts as unset. Any value
 * that cannot be used throws a {@link UsageError} naming its source.
 */
import { DEFAULT_EXPORT_BATCH_SIZE, DEFAULT_OTLP_QUEUE_SIZE } from '../defaults.ts';
import { UsageError } from '../errors.ts';
import { visible } from '../escape.ts';
import { describeSampling, resolveSampling } from './sampling.ts';
import type { SamplingConfig } from './sampling.ts';

export type OtlpCompression = 'gzip' | 'none';

/** OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL: OTLP over gRPC (default) or over HTTP with protobuf bodies. */
export type OtlpProtocol = 'grpc' | 'http/protobuf';

/** What is exported: `logs` (a record per event), `traces` (a span per connection), `metrics` (aggregated). */
export type OtlpSignal = 'logs' | 'traces' | 'metrics';

/**
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, as the OpenTelemetry
 * specification defines it: `cumulative` (every instrument cumulative),
 * `delta` (counters, asynchronous counters and histograms delta,
 * up-down counters cumulative), `lowmemory` (synchronous counters and
 * histograms delta, the rest cumulative).
 */
export type MetricTemporality = 'cumulative' | 'delta' | 'lowmemory';

/** How metrics are collected and exported (the signal's target is {@link OtlpConfig.metrics}). */
export interface MetricExportConfig {
  /** OTEL_METRIC_EXPORT_INTERVAL: ms between two collections. Default 60000. */
  readonly intervalMs: number;
  /** OTEL_METRIC_EXPORT_TIMEOUT: longest one export attempt of a collection may take, ms (caps the target's timeout). Default 30000. */
  readonly timeoutMs: number;
  readonly temporality: MetricTemporality;
  /**
   * `--metrics-cardinality-limit` / TCPTRACER_METRICS_CARDINALITY_LIMIT: most
   * series of one metric per resource, the overflow series
   * (`otel.metric.overflow=true`) included. Default 2000 (the SDK specification's).
   */
  readonly cardinalityLimit: number;
}

/**
 * Which resource a connection's span is exported under: `process` (default):
 * one describing the traced process (service.name = its executable name);
 * `tracer`: the tracer's own, as the log records are.
 */
export type SpanServiceName = 'process' | 'tracer';

/** Where and how one signal is sent. */
export interface OtlpTarget {
  /** Default `grpc`. */
  readonly protocol: OtlpProtocol;
  /**
   * gRPC: the collector, `http://host:port` (plaintext) or `https://host:port` (TLS), default
   * `http://localhost:4317`. HTTP: the full URL of the signal, default `http://localhost:4318/v1/logs`
   * (or `/v1/traces`); a base endpoint (the flag, OTEL_EXPORTER_OTLP_ENDPOINT) gets that path appended.
   */
  readonly endpoint: string;
  /** True when the channel is plaintext (endpoint scheme `http`). */
  readonly insecure: boolean;
  /** PEM file of the CA certificates to trust for TLS; undefined: the system's roots. */
  readonly certificatePath: string | undefined;
  /** PEM client certificate chain for mutual TLS (set together with clientKeyPath). */
  readonly clientCertificatePath: string | undefined;
  /** PEM client private key for mutual TLS. */
  readonly clientKeyPath: string | undefined;
  /** gRPC metadata sent with every export; keys lower-case. Values are secrets: never print them. */
  readonly headers: Readonly<Record<string, string>>;
  /** Request compression. Default `none`. */
  readonly compression: OtlpCompression;
  /** Deadline of one export attempt, ms. Default 10000. */
  readonly timeoutMs: number;
}

/** Everything the OTLP pipeline needs, validated. */
export interface OtlpConfig {
  /** Signals exported, in the order `logs`, `traces`, `metrics`; at least one. Default logs and traces. */
  readonly signals: readonly OtlpSignal[];
  /** Where log records go (resolved even when logs are not exported). */
  readonly logs: OtlpTarget;
  /** Where spans go (resolved even when traces are not exported). */
  readonly traces: OtlpTarget;
  /** Where metrics go (resolved even when metrics are not exported); its timeout is at most metricExport.timeoutMs. */
  readonly metrics: OtlpTarget;
  /** Collection interval, temporality and cardinality of the metrics. */
  readonly metricExport: MetricExportConfig;
  /** `service.name` of the tracer's own resource. Default `tcptracer`. */
  readonly serviceName: string;
  /** Extra resource attributes from OTEL_RESOURCE_ATTRIBUTES. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** TCPTRACER_SPAN_SERVICE_NAME: the resource spans are exported under. Default `process`. */
  readonly spanServiceName: SpanServiceName;
  /**
   * Most items held per signal (queued + being exported) before new ones are
   * dropped. Default 4096 ({@link DEFAULT_OTLP_QUEUE_SIZE}).
   *
   * The kernel's ring buffer is the queue that absorbs bursts (its size is the
   * CLI's `--ringbuf-size`): the tracer reads from it only as fast as this
   * queue has room, so this one only has to keep the exports busy. Small is
   * better here. Memory: queued items are held as the tracer's events (about
   * 310 bytes of heap each, IPv4) and made into log records or spans only when
   * exported, so 4096 costs about 1.3 MB per signal (16384: 5 MB). Delay: when
   * events come faster than they can be exported the queue stays full and
   * every record waits its length on top of its time in the ring buffer;
   * measured on a 2-core VM (`npm run bench -- --only otlp`), one export
   * pipeline delivers 15-20k records/s under overload, so 4096 adds about
   * 0.2-0.3 s (computed from that rate; 16384 measured 1.7-2.1 s at p99).
   * Raise it only for a caller that cannot apply backpressure (one that
   * emits without waiting for room()).
   */
  readonly maxQueueSize: number;
  /**
   * Most items in one export request. Default 512, at most maxQueueSize.
   * (2048 and 4096 measured no cheaper per record for the tracer: serializing
   * and sending cost per record, not per request; a request of 512 is ~300 KB.)
   */
  readonly maxExportBatchSize: number;
  /** Longest an item waits for a batch to fill before it is sent, ms. Default 1000. */
  readonly scheduledDelayMs: number;
  /** Time shutdown may spend delivering what is still queued, ms. Default 5000. */
  readonly shutdownTimeoutMs: number;
  /** Which connections are exported (`--sample`, OTEL_TRACES_SAMPLER[_ARG]): src/otlp/sampling.ts. Default: all. */
  readonly sampling: SamplingConfig;
}

/** Values from the command line; the CLI passes what it parsed (strings are validated here). */
export interface OtlpFlags {
  /** `--otlp-endpoint`: for both signals, over OTEL_EXPORTER_OTLP_{LOGS,TRACES}_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint?: string | undefined;
  /** `--otlp-queue-size` (items per signal): overrides TCPTRACER_OTLP_QUEUE_SIZE and OTEL_BLRP_MAX_QUEUE_SIZE. */
  readonly queueSize?: string | number | undefined;
  /** `--otlp-signals`, the raw flag text (`logs`, `traces`, `metrics`, `logs,traces`...): overrides TCPTRACER_OTLP_SIGNALS. */
  readonly signals?: string | undefined;
  /** `--sample`, the raw ratio text: overrides OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG. */
  readonly sample?: string | undefined;
  /** `--metrics-cardinality-limit`: overrides TCPTRACER_METRICS_CARDINALITY_LIMIT. */
  readonly cardinalityLimit?: string | number | undefined;
}

export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4317';
/** The default base endpoint over HTTP (`/v1/logs`, `/v1/traces` appended). */
export const DEFAULT_OTLP_HTTP_ENDPOINT = 'http://localhost:4318';
export const DEFAULT_SERVICE_NAME = 'tcptracer';
/** See {@link OtlpConfig.maxQueueSize}. */
export const DEFAULT_SIGNALS: readonly OtlpSignal[] = ['logs', 'traces'];
/** Every signal, in the order they are listed. */
export const ALL_SIGNALS: readonly OtlpSignal[] = ['logs', 'traces', 'metrics'];
/** The SDK specification's defaults: OTEL_METRIC_EXPORT_INTERVAL, OTEL_METRIC_EXPORT_TIMEOUT, the cardinality limit. */
export const DEFAULT_METRIC_EXPORT_INTERVAL_MS = 60_000;
export const DEFAULT_METRIC_EXPORT_TIMEOUT_MS = 30_000;
export const DEFAULT_METRICS_CARDINALITY_LIMIT = 2000;

type Env = Readonly<Record<string, string | undefined>>;

interface Setting {
  /** Where the value came from, e.g. `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly source: string;
  readonly value: string;
}

const GENERIC = 'OTEL_EXPORTER_OTLP_';
const SIGNAL_PREFIX: Readonly<Record<OtlpSignal, string>> = {
  logs: 'OTEL_EXPORTER_OTLP_LOGS_',
  traces: 'OTEL_EXPORTER_OTLP_TRACES_',
  metrics: 'OTEL_EXPORTER_OTLP_METRICS_',
};

/** Resolves flags + environment into one validated {@link OtlpConfig}. */
export function resolveOtlpConfig(flags: OtlpFlags = {}, env: Env = process.env): OtlpConfig {
  const first = (flag: string | number | undefined, flagName: string, ...names: string[]): Setting | undefined => {
    const given = flag === undefined ? '' : String(flag).trim();
    if (given !== '') return { source: flagName, value: given };
    for (const name of names) {
      const value = env[name]?.trim();
      if (value) return { source: name, value };
    }
    return undefined;
  };
  const target = (signal: OtlpSignal): OtlpTarget => {
    const prefix = SIGNAL_PREFIX[signal];
    const otlp = (suffix: string): Setting | undefined => first(undefined, '', prefix + suffix, GENERIC + suffix);
    const insecureFlag = otlp('INSECURE');
    const protocol = parseProtocol(otlp('PROTOCOL'));
    const endpointSetting = first(flags.endpoint, '--otlp-endpoint', `${prefix}ENDPOINT`, `${GENERIC}ENDPOINT`);
    const insecureIfNoScheme = insecureFlag === undefined ? false : parseBoolean(insecureFlag);
    const { endpoint, insecure } = protocol === 'grpc'
      ? parseEndpoint(endpointSetting, insecureIfNoScheme)
      : parseHttpEndpoint(endpointSetting, insecureIfNoScheme, signal, endpointSetting?.source === `${prefix}ENDPOINT`);
    return {
      protocol,
      endpoint,
      insecure,
      certificatePath: otlp('CERTIFICATE')?.value,
      clientCertificatePath: otlp('CLIENT_CERTIFICATE')?.value,
      clientKeyPath: otlp('CLIENT_KEY')?.value,
      headers: {
        ...parseKeyValues(first(undefined, '', `${GENERIC}HEADERS`), true),
        ...parseKeyValues(first(undefined, '', `${prefix}HEADERS`), true),
      },
      compression: parseCompression(otlp('COMPRESSION')),
      timeoutMs: parseCount(otlp('TIMEOUT'), 10_000),
    };
  };

  const signals = parseSignals(first(flags.signals, '--otlp-signals', 'TCPTRACER_OTLP_SIGNALS'));
  const logs = target('logs');
  const traces = target('traces');
  const metricExport: MetricExportConfig = {
    intervalMs: parseCount(first(undefined, '', 'OTEL_METRIC_EXPORT_INTERVAL'), DEFAULT_METRIC_EXPORT_INTERVAL_MS),
    timeoutMs: parseCount(first(undefined, '', 'OTEL_METRIC_EXPORT_TIMEOUT'), DEFAULT_METRIC_EXPORT_TIMEOUT_MS),
    temporality: parseTemporality(first(undefined, '', 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE')),
    cardinalityLimit: parseCount(first(flags.cardinalityLimit, '--metrics-cardinality-limit', 'TCPTRACER_METRICS_CARDINALITY_LIMIT'), DEFAULT_METRICS_CARDINALITY_LIMIT),
  };
  const metricsTarget = target('metrics');
  const metrics = { ...metricsTarget, timeoutMs: Math.min(metricsTarget.timeoutMs, metricExport.timeoutMs) };
  const resourceAttributes = parseKeyValues(first(undefined, '', 'OTEL_RESOURCE_ATTRIBUTES'), false);
  const maxQueueSize = parseCount(first(flags.queueSize, '--otlp-queue-size', 'TCPTRACER_OTLP_QUEUE_SIZE', 'OTEL_BLRP_MAX_QUEUE_SIZE'), DEFAULT_OTLP_QUEUE_SIZE);
  const batch = first(undefined, '', 'OTEL_BLRP_MAX_EXPORT_BATCH_SIZE');
  const maxExportBatchSize = parseCount(batch, Math.min(DEFAULT_EXPORT_BATCH_SIZE, maxQueueSize));
  if (maxExportBatchSize > maxQueueSize) {
    throw new UsageError(`${batch?.source ?? 'batch size'} ${maxExportBatchSize} exceeds the queue size ${maxQueueSize}`);
  }
  return {
    signals,
    logs,
    traces,
    metrics,
    metricExport,
    serviceName: first(undefined, '', 'OTEL_SERVICE_NAME')?.value ?? resourceAttributes['service.name'] ?? DEFAULT_SERVICE_NAME,
    resourceAttributes,
    spanServiceName: parseSpanServiceName(first(undefined, '', 'TCPTRACER_SPAN_SERVICE_NAME')),
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMs: parseCount(first(undefined, '', 'OTEL_BLRP_SCHEDULE_DELAY'), 1000),
    shutdownTimeoutMs: parseCount(first(undefined, '', 'TCPTRACER_OTLP_SHUTDOWN_TIMEOUT'), 5000),
    sampling: resolveSampling(flags.sample, env),
  };
}

/**
 * One line for the startup banner, e.g. `otlp: logs -> http://c:4317 (grpc
 * plaintext, ...), traces -> http://c:4317 (...); queue ...`. Header and
 * resource attribute values are left out (they may hold credentials): only
 * their names are shown. Control characters are escaped ({@link visible}).
 */
export function describeOtlpConfig(cfg: OtlpConfig): string {
  const resource = Object.keys(cfg.resourceAttributes).join(',') || 'none';
  const signals = ALL_SIGNALS
    .map((signal) => (cfg.signals.includes(signal) ? `${signal} -> ${describeTarget(cfg[signal])}` : `${signal} off`))
    .join(', ');
  const m = cfg.metricExport;
  const metrics = cfg.signals.includes('metrics') ? `; metrics every ${m.intervalMs} ms, ${m.temporality}, at most ${m.cardinalityLimit} series per metric and process` : '';
  const spans = cfg.signals.includes('traces') ? `, spans under ${cfg.spanServiceName === 'process' ? "each process's service.name" : 'the tracer\'s service.name'}` : '';
  // one line whatever OTEL_SERVICE_NAME or the attribute names hold
  return visible(
    `otlp: ${signals}; queue ${cfg.maxQueueSize} per signal, batch ${cfg.maxExportBatchSize}, delay ${cfg.scheduledDelayMs} ms, ` +
    `shutdown ${cfg.shutdownTimeoutMs} ms${metrics}; service.name=${cfg.serviceName}${spans}, resource attributes ${resource}; ` +
    describeSampling(cfg.sampling)
  );
}

function describeTarget(t: OtlpTarget): string {
  const headers = Object.keys(t.headers).map((k) => `${k}=<redacted>`).join(',') || 'none';
  const tls = t.insecure ? 'plaintext' : `tls${t.certificatePath === undefined ? '' : ' (custom CA)'}${t.clientKeyPath === undefined ? '' : ' (client cert)'}`;
  return `${t.endpoint} (${t.protocol} ${tls}, compression ${t.compression}, timeout ${t.timeoutMs} ms, headers ${headers})`;
}

function parseSignals(setting: Setting | undefined): readonly OtlpSignal[] {
  if (setting === undefined) return DEFAULT_SIGNALS;
  const wanted = new Set<OtlpSignal>();
  for (const item of setting.value.split(',')) {
    const name = item.trim().toLowerCase();
    if (name === '') continue;
    if (name !== 'logs' && name !== 'traces' && name !== 'metrics') {
      throw new UsageError(`${setting.source}: unknown signal '${item.trim()}' (expected a list of logs, traces, metrics)`);
    }
    wanted.add(name);
  }
  if (wanted.size === 0) throw new UsageError(`${setting.source}: name at least one signal (logs, traces, metrics)`);
  return ALL_SIGNALS.filter((s) => wanted.has(s));
}

function parseTemporality(setting: Setting | undefined): MetricTemporality {
  if (setting === undefined) return 'cumulative';
  const v = setting.value.toLowerCase();
  if (v === 'cumulative' || v === 'delta' || v === 'lowmemory') return v;
  throw new UsageError(`${setting.source}: expected cumulative, delta or lowmemory, got '${setting.value}'`);
}

function parseSpanServiceName(setting: Setting | undefined): SpanServiceName {
  if (setting === undefined) return 'process';
  const v = setting.value.toLowerCase();
  if (v === 'process' || v === 'tracer') return v;
  throw new UsageError(`${setting.source}: expected process or tracer, got '${setting.value}'`);
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

function parseProtocol(setting: Setting | undefined): OtlpProtocol {
  if (setting === undefined) return 'grpc';
  const v = setting.value.toLowerCase();
  if (v === 'grpc' || v === 'http/protobuf') return v;
  throw new UsageError(`${setting.source}: expected grpc or http/protobuf, got '${setting.value}'`);
}

/**
 * An OTLP/HTTP signal URL: a signal's own variable is the full URL, as given; a base endpoint
 * (the flag, the generic variable, the default) gets `v1/<signal>` appended to its path.
 */
function parseHttpEndpoint(setting: Setting | undefined, insecureIfNoScheme: boolean, signal: OtlpSignal, full: boolean): { endpoint: string; insecure: boolean } {
  const url = parseUrl(setting, DEFAULT_OTLP_HTTP_ENDPOINT, insecureIfNoScheme);
  if (url.search !== '' || url.hash !== '') {
    throw new UsageError(`${setting?.source ?? 'default endpoint'}: an OTLP/HTTP endpoint takes no query or fragment`);
  }
  if (!full) url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/${signal}`;
  return { endpoint: url.href, insecure: url.protocol === 'http:' };
}

function parseEndpoint(setting: Setting | undefined, insecureIfNoScheme: boolean): { endpoint: string; insecure: boolean } {
  const url = parseUrl(setting, DEFAULT_OTLP_ENDPOINT, insecureIfNoScheme);
  const raw = setting?.value ?? DEFAULT_OTLP_ENDPOINT;
  const source = setting?.source ?? 'default endpoint';
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new UsageError(`${source}: an OTLP/gRPC endpoint takes no path, query or fragment (got '${raw}')`);
  }
  return { endpoint: `${url.protocol}//${url.host}`, insecure: url.protocol === 'http:' };
}

/** An http(s) URL without credentials, from `setting` or `fallback`; no scheme: https, or http when insecure. */
function parseUrl(setting: Setting | undefined, fallback: string, insecureIfNoScheme: boolean): URL {
  const raw = setting?.value ?? fallback;
  const source = setting?.source ?? 'default endpoint';
  const hasScheme = SCHEME.test(raw);
  let url: URL;
  try {
    url = new URL(hasScheme ? raw : `${insecureIfNoScheme ? 'http' : 'https'}://${raw}`);
  } catch {
    throw new UsageError(`${source}: '${raw}' is not a valid endpoint (expected http://host:port or https://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${source}: scheme '${url.protocol}' is not supported (use http:// or https://)`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new UsageError(`${source}: credentials in the endpoint are not supported; use OTEL_EXPORTER_OTLP_HEADERS`);
  }
  return url;
}

function parseBoolean(setting: Setting): boolean {
  const v = setting.value.toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new UsageError(`${setting.source}: expected true or false, got '${setting.value}'`);
}

function parseCompression(setting: Setting | undefined): OtlpCompression {
  if (setting === undefined) return 'none';
  const v = setting.value.toLowerCase();
  if (v === 'gzip' || v === 'none') return v;
  throw new UsageError(`${setting.source}: expected gzip or none, got '${setting.value}'`);
}

/** A positive integer no larger than 2^31 - 1 (a count or milliseconds). */
function parseCount(setting: Setting | undefined, fallback: number): number {
  if (setting === undefined) return fallback;
  const n = /^\d+$/.test(setting.value) ? Number(setting.value) : NaN;
  if (!(n >= 1 && n <= 0x7fffffff)) {
    throw new UsageError(`${setting.source}: expected a positive integer, got '${setting.value}'`);
  }
  return n;
}

const METADATA_KEY = /^[0-9a-z_.-]+$/;
const METADATA_VALUE = /^[ -~]*$/;

/**
 * Parses `k1=v1,k2=v2` (W3C-baggage-like, as OTEL_EXPORTER_OTLP_HEADERS and
 * OTEL_RESOURCE_ATTRIBUTES are) with percent-decoding of keys and values.
 * Header keys are lower-cased and must be valid gRPC metadata keys.
 */
function parseKeyValues(setting: Setting | undefined, asHeaders: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (setting === undefined) return out;
  for (const item of setting.value.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(item.slice(0, eq).trim());
      value = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      throw new UsageError(`${setting.source}: bad percent-encoding in entry #${Object.keys(out).length + 1}`);
    }
    if (eq < 1 || key === '') {
      throw new UsageError(`${setting.source}: expected key=value pairs separated by commas`);
    }
    if (asHeaders) {
      key = key.toLowerCase();
      if (!METADATA_KEY.test(key) || key.endsWith('-bin')) {
        throw new UsageError(`${setting.source}: '${key}' is not a valid gRPC metadata key`);
      }
      // gRPC sends only printable ASCII in a text header; the value is a secret: not shown
      if (!METADATA_VALUE.test(value)) {
        throw new UsageError(`${setting.source}: the value of '${key}' is not a valid gRPC metadata value (printable ASCII only)`);
      }
    }
    out[key] = value;
  }
  return out;
}
