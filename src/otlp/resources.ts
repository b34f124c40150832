/**
 * The resources telemetry is exported under.
 *
 * Log records: the tracer's own resource ({@link tracerResource}):
 * service.name (default `tcptracer`), service.version, host.*, os.*,
 * telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES.
 *
 * Spans (TCPTRACER_SPAN_SERVICE_NAME=process, the default): a resource per
 * traced process, so that a trace backend's service list and dependency graph
 * show `psql -> postgres`, not one `tcptracer` talking to itself:
 * `service.name` and `process.executable.name` = the process's executable
 * name (the kernel's comm), the same host.* / os.* / telemetry.sdk.* and
 * OTEL_RESOURCE_ATTRIBUTES (but their service.name, which names the tracer),
 * and the tracer itself as `telemetry.distro.name` / `telemetry.distro.version`
 * (`tcptracer-otel`, its version) and `tcptracer.observer.service.name` (the
 * tracer's service.name). At most {@link MAX_SPAN_RESOURCES} of them; spans of
 * further processes go under one fallback resource, service.name
 * `unknown_service`, and are counted. With `tracer`, every span is exported
 * under the tracer's own resource.
 *
 * The encoder (src/otlp/wire/requests.ts) groups spans by their resource object: one
 * object per process, made once.
 */
import { defaultResource, detectResources, hostDetector, osDetector, resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import {
  ATTR_PROCESS_EXECUTABLE_NAME,
  ATTR_TCPTRACER_OBSERVER_SERVICE_NAME,
  ATTR_TELEMETRY_DISTRO_NAME,
  ATTR_TELEMETRY_DISTRO_VERSION,
} from '../semconv.ts';
import { PACKAGE_NAME } from '../version.ts';
import type { OtlpConfig } from './config.ts';

/** Most span resources (traced processes) kept; see the module doc. */
export const MAX_SPAN_RESOURCES = 256;
/** service.name of the fallback span resource. */
export const FALLBACK_SERVICE_NAME = 'unknown_service';

/** host.* and os.*, detected once per sink (host.id resolves asynchronously; exports wait for it). */
export function detectHost(): Resource {
  return detectResources({ detectors: [hostDetector, osDetector] });
}

/**
 * telemetry.sdk.*, then host.name/host.id/host.arch and os.type/os.version,
 * service.version, OTEL_RESOURCE_ATTRIBUTES, and service.name last, so that
 * OTEL_SERVICE_NAME wins.
 */
export function tracerResource(cfg: OtlpConfig, version: string, host: Resource = detectHost()): Resource {
  return defaultResource()
    .merge(host)
    .merge(resourceFromAttributes({ [ATTR_SERVICE_VERSION]: version }))
    .merge(resourceFromAttributes(cfg.resourceAttributes))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: cfg.serviceName }));
}

/** The resources spans are exported under, one per traced process (see the module doc). */
export class SpanResources {
  /** Set in `tracer` mode: the one resource every span uses. */
  private readonly only: Resource | undefined;
  /** What every process resource has (host, telemetry, observer, OTEL_RESOURCE_ATTRIBUTES). */
  private readonly base: Resource;
  private readonly byService = new Map<string, Resource>();
  private fallback: Resource | undefined;
  private overflowCount = 0;

  /** @param host the detected host.* and os.* ({@link detectHost}), shared with the log records' resource. */
  constructor(cfg: OtlpConfig, version: string, host: Resource = detectHost()) {
    if (cfg.spanServiceName === 'tracer') {
      this.only = tracerResource(cfg, version, host);
      this.base = host;
      return;
    }
    this.only = undefined;
    const attributes = Object.fromEntries(Object.entries(cfg.resourceAttributes).filter(([key]) => key !== ATTR_SERVICE_NAME));
    this.base = defaultResource()
      .merge(host)
      .merge(resourceFromAttributes(attributes))
      .merge(
        resourceFromAttributes({
          [ATTR_TELEMETRY_DISTRO_NAME]: PACKAGE_NAME,
          [ATTR_TELEMETRY_DISTRO_VERSION]: version,
          [ATTR_TCPTRACER_OBSERVER_SERVICE_NAME]: cfg.serviceName,
        }),
      );
  }

  /** Spans exported under the fallback resource because {@link MAX_SPAN_RESOURCES} was reached. */
  get overflow(): number {
    return this.overflowCount;
  }

  /** Process resources made so far. */
  get size(): number {
    return this.byService.size;
  }

  /** The resource of spans of the process whose executable name is `comm`. */
  resourceFor(comm: string): Resource {
    if (this.only !== undefined) return this.only;
    const known = this.byService.get(comm);
    if (known !== undefined) return known;
    if (this.byService.size >= MAX_SPAN_RESOURCES) {
      this.overflowCount++;
      this.fallback ??= this.base.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: FALLBACK_SERVICE_NAME }));
      return this.fallback;
    }
    const resource = this.base.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: comm, [ATTR_PROCESS_EXECUTABLE_NAME]: comm }));
    this.byService.set(comm, resource);
    return resource;
  }
}
