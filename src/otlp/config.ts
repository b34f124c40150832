/**
 * OTLP exporter configuration, resolved once at start from flags and the
 * environment (the standard OTEL_* variables plus TCPTRACER_OTLP_*).
 *
 * Precedence for each setting: flag, then the logs-specific variable
 * (OTEL_EXPORTER_OTLP_LOGS_*), then the generic one (OTEL_EXPORTER_OTLP_*),
 * then the default. An empty variable counts as unset. Any value that cannot
 * be used throws a {@link UsageError} naming its source.
 */
import { UsageError } from '../errors.ts';

export type OtlpCompression = 'gzip' | 'none';

/** Everything the OTLP pipeline needs, validated. */
export interface OtlpConfig {
  /** Collector URL, `http://host:port` (plaintext) or `https://host:port` (TLS). Default `http://localhost:4317`. */
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
  /** `service.name` of the resource. Default `tcptracer`. */
  readonly serviceName: string;
  /** Extra resource attributes from OTEL_RESOURCE_ATTRIBUTES. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /**
   * Most records held (queued + being exported) before new ones are dropped.
   * Default 16384 ({@link DEFAULT_QUEUE_SIZE}).
   *
   * Queued records are held as the tracer's events (about 310 bytes of heap
   * each, IPv4) and made into log records only when exported, so the queue
   * itself costs about 5 MB at the default and 20 MB at 65536. The bound
   * matters more for delay: when events come faster than they can be exported,
   * the queue stays full and every record waits its length. Measured on a
   * 2-core VM (`npm run bench -- --only otlp`): under overload, one export pipeline
   * delivers 15-20k records/s while the tracer competes with the workload for
   * CPU, so with 16384 the kernel-to-collector p99 delay was 1.7-2.1 s (65536:
   * 3.7 s) and peak RSS 50-80 MB lower; at 5k events/s it still rides out a
   * collector outage of about 3 s. Raise it to absorb longer outages.
   */
  readonly maxQueueSize: number;
  /**
   * Most records in one export request. Default 512, at most maxQueueSize.
   * (2048 and 4096 measured no cheaper per record for the tracer: serializing
   * and sending cost per record, not per request; a request of 512 is ~300 KB.)
   */
  readonly maxExportBatchSize: number;
  /** Longest a record waits for a batch to fill before it is sent, ms. Default 1000. */
  readonly scheduledDelayMs: number;
  /** Time shutdown may spend delivering what is still queued, ms. Default 5000. */
  readonly shutdownTimeoutMs: number;
}

/** Values from the command line; the CLI passes what it parsed (strings are validated here). */
export interface OtlpFlags {
  /** `--otlp-endpoint`: overrides OTEL_EXPORTER_OTLP_LOGS_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly endpoint?: string | undefined;
  /** `--otlp-queue-size` (records): overrides TCPTRACER_OTLP_QUEUE_SIZE and OTEL_BLRP_MAX_QUEUE_SIZE. */
  readonly queueSize?: string | number | undefined;
}

export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4317';
export const DEFAULT_SERVICE_NAME = 'tcptracer';
/** See {@link OtlpConfig.maxQueueSize}. */
export const DEFAULT_QUEUE_SIZE = 16_384;
export const DEFAULT_EXPORT_BATCH_SIZE = 512;

type Env = Readonly<Record<string, string | undefined>>;

interface Setting {
  /** Where the value came from, e.g. `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly source: string;
  readonly value: string;
}

const GENERIC = 'OTEL_EXPORTER_OTLP_';
const LOGS = 'OTEL_EXPORTER_OTLP_LOGS_';

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
  const otlp = (suffix: string): Setting | undefined => first(undefined, '', LOGS + suffix, GENERIC + suffix);

  const insecureFlag = otlp('INSECURE');
  const { endpoint, insecure } = parseEndpoint(
    first(flags.endpoint, '--otlp-endpoint', `${LOGS}ENDPOINT`, `${GENERIC}ENDPOINT`),
    insecureFlag === undefined ? false : parseBoolean(insecureFlag),
  );
  const resourceAttributes = parseKeyValues(first(undefined, '', 'OTEL_RESOURCE_ATTRIBUTES'), false);
  const maxQueueSize = parseCount(first(flags.queueSize, '--otlp-queue-size', 'TCPTRACER_OTLP_QUEUE_SIZE', 'OTEL_BLRP_MAX_QUEUE_SIZE'), DEFAULT_QUEUE_SIZE);
  const batch = first(undefined, '', 'OTEL_BLRP_MAX_EXPORT_BATCH_SIZE');
  const maxExportBatchSize = parseCount(batch, Math.min(DEFAULT_EXPORT_BATCH_SIZE, maxQueueSize));
  if (maxExportBatchSize > maxQueueSize) {
    throw new UsageError(`${batch?.source ?? 'batch size'} ${maxExportBatchSize} exceeds the queue size ${maxQueueSize}`);
  }
  return {
    endpoint,
    insecure,
    certificatePath: otlp('CERTIFICATE')?.value,
    clientCertificatePath: otlp('CLIENT_CERTIFICATE')?.value,
    clientKeyPath: otlp('CLIENT_KEY')?.value,
    headers: {
      ...parseKeyValues(first(undefined, '', `${GENERIC}HEADERS`), true),
      ...parseKeyValues(first(undefined, '', `${LOGS}HEADERS`), true),
    },
    compression: parseCompression(otlp('COMPRESSION')),
    timeoutMs: parseCount(otlp('TIMEOUT'), 10_000),
    serviceName: first(undefined, '', 'OTEL_SERVICE_NAME')?.value ?? resourceAttributes['service.name'] ?? DEFAULT_SERVICE_NAME,
    resourceAttributes,
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMs: parseCount(first(undefined, '', 'OTEL_BLRP_SCHEDULE_DELAY'), 1000),
    shutdownTimeoutMs: parseCount(first(undefined, '', 'TCPTRACER_OTLP_SHUTDOWN_TIMEOUT'), 5000),
  };
}

/**
 * One line for the startup banner. Header and resource attribute values are
 * left out (they may hold credentials): only their names are shown.
 */
export function describeOtlpConfig(cfg: OtlpConfig): string {
  const headers = Object.keys(cfg.headers).map((k) => `${k}=<redacted>`).join(',') || 'none';
  const resource = Object.keys(cfg.resourceAttributes).join(',') || 'none';
  const tls = cfg.insecure ? 'plaintext' : `tls${cfg.certificatePath === undefined ? '' : ' (custom CA)'}${cfg.clientKeyPath === undefined ? '' : ' (client cert)'}`;
  return (
    `otlp: logs -> ${cfg.endpoint} grpc ${tls}, compression ${cfg.compression}, timeout ${cfg.timeoutMs} ms, ` +
    `headers ${headers}; queue ${cfg.maxQueueSize} records, batch ${cfg.maxExportBatchSize}, delay ${cfg.scheduledDelayMs} ms, ` +
    `shutdown ${cfg.shutdownTimeoutMs} ms; service.name=${cfg.serviceName}, resource attributes ${resource}`
  );
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

function parseEndpoint(setting: Setting | undefined, insecureIfNoScheme: boolean): { endpoint: string; insecure: boolean } {
  const raw = setting?.value ?? DEFAULT_OTLP_ENDPOINT;
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
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new UsageError(`${source}: an OTLP/gRPC endpoint takes no path, query or fragment (got '${raw}')`);
  }
  return { endpoint: `${url.protocol}//${url.host}`, insecure: url.protocol === 'http:' };
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
    }
    out[key] = value;
  }
  return out;
}
