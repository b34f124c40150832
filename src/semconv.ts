/**
 * Attribute names used on tcptracer's log records, spans and resources.
 *
 * Stable semantic conventions (network.*, client.*, server.*, service.*) are
 * imported from `@opentelemetry/semantic-conventions` wherever they are used.
 * The incubating ones below are copied here, as that package advises for
 * unstable conventions, so that a minor release of it cannot rename them under
 * us. They match semantic-conventions 1.45 (`@opentelemetry/semantic-conventions/incubating`).
 *
 * Attributes that have no convention live under the single prefix `tcptracer.`.
 */

// ---- Incubating semantic conventions (copied) ----

/** Process identifier (PID): the tgid of the task, in the host's PID namespace. */
export const ATTR_PROCESS_PID = 'process.pid';
/** Name of the process executable; we report the kernel's task `comm` (at most 15 bytes). */
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
/**
 * The real user ID (RUID) of the process (incubating). The probe reports both the
 * real uid (what `bpf_get_current_uid_gid()` returns, and what -u filters on) and
 * the effective one (process.user.id); they differ for setuid programs.
 */
export const ATTR_PROCESS_REAL_USER_ID = 'process.real_user.id';
/** Effective user ID of the process (incubating). */
export const ATTR_PROCESS_USER_ID = 'process.user.id';
/** Current thread identifier (the kernel tid). */
export const ATTR_THREAD_ID = 'thread.id';
/**
 * Container id (incubating): the full 64-hex id the runtime gave the task's
 * container, from its cgroup path (src/identity/); absent for host processes.
 * A record attribute here: the Collector's groupbyattrs makes it a resource
 * attribute for k8sattributes.
 */
export const ATTR_CONTAINER_ID = 'container.id';
/** Kubernetes pod uid (incubating), from the kubepods cgroup path, with dashes. */
export const ATTR_K8S_POD_UID = 'k8s.pod.uid';
/** Resource: name of the host. */
export const ATTR_HOST_NAME = 'host.name';
/** Resource: unique host id (machine-id on Linux). */
export const ATTR_HOST_ID = 'host.id';
/** Resource: operating system type, e.g. `linux`. */
export const ATTR_OS_TYPE = 'os.type';
/** Resource: name of the distribution of the OpenTelemetry SDK that produced the telemetry (the tracer: `tcptracer-otel`). */
export const ATTR_TELEMETRY_DISTRO_NAME = 'telemetry.distro.name';
/** Resource: its version. */
export const ATTR_TELEMETRY_DISTRO_VERSION = 'telemetry.distro.version';

// ---- Project-specific attributes (no convention exists) ----

/** Inode number of the socket's network namespace (as in `/proc/<pid>/ns/net`). Int. */
export const ATTR_TCPTRACER_NETNS_INODE = 'tcptracer.netns.inode';
/** cgroup v2 id of the task (the inode number of its cgroup directory). Int. */
export const ATTR_TCPTRACER_CGROUP_ID = 'tcptracer.cgroup.id';
/** close only: nanoseconds from ESTABLISHED to close. Int. */
export const ATTR_TCPTRACER_CONNECTION_DURATION_NS = 'tcptracer.connection.duration_ns';
/** close only: bytes sent by this host and acknowledged by the peer (tcp_info bytes_acked). Int. */
export const ATTR_TCPTRACER_CONNECTION_BYTES_ACKED = 'tcptracer.connection.bytes_acked';
/** close only: bytes received by this host (tcp_info bytes_received). Int. */
export const ATTR_TCPTRACER_CONNECTION_BYTES_RECEIVED = 'tcptracer.connection.bytes_received';
/** connect only (client): nanoseconds from SYN_SENT to ESTABLISHED, the handshake. Int. */
export const ATTR_TCPTRACER_CONNECTION_HANDSHAKE_NS = 'tcptracer.connection.handshake_ns';
/** close only: the smoothed round-trip time at close (tcp_sock srtt_us / 8), microseconds. Int. */
export const ATTR_TCPTRACER_CONNECTION_RTT_US = 'tcptracer.connection.rtt_us';
/** close only: segments this host retransmitted over the connection's life (tcp_sock total_retrans). Int. */
export const ATTR_TCPTRACER_CONNECTION_RETRANSMITS = 'tcptracer.connection.retransmits';
/** Which end of the connection this host is: `client` (it connected) or `server` (it accepted). String. */
export const ATTR_TCPTRACER_CONNECTION_ROLE = 'tcptracer.connection.role';
/**
 * Span only: how the connection ended: `fin` (this host sent its FIN),
 * `reset` (reset or aborted), `destroyed` (the socket went away with neither
 * seen), `tracer_stopped` (still open when the tracer stopped).
 */
export const ATTR_TCPTRACER_CONNECTION_END = 'tcptracer.connection.end';
/**
 * Resource of a span exported under the traced process's own service name:
 * the `service.name` of the tracer that observed it (e.g. `tcptracer`), so
 * that a backend can tell spans observed by the kernel from spans the
 * application made itself, and which tracer deployment made them.
 */
export const ATTR_TCPTRACER_OBSERVER_SERVICE_NAME = 'tcptracer.observer.service.name';

// ---- Event names (LogRecord EventName field) ----

/** Event name of a connect, accept or close record. */
export const EVENT_TCP_CONNECT = 'tcp.connect';
export const EVENT_TCP_ACCEPT = 'tcp.accept';
export const EVENT_TCP_CLOSE = 'tcp.close';
/** Event name of a connect that never established (`--failed`). */
export const EVENT_TCP_CONNECT_FAILED = 'tcp.connect_failed';
