/**
 * Public types of tcptracer-otel.
 *
 * One TcpEvent is produced per TCP connect, accept or close seen by the kernel
 * probe (bpf/tcptracer.bpf.c). The wire layout it is decoded from is defined once,
 * in bpf/tcptracer.h; src/event.ts mirrors it.
 */

/**
 * Kind of event, named as bcc's tcptracer verbose output names them; `failed`
 * (a connect that never established) exists only with `--failed`.
 */
export type TcpEventType = 'connect' | 'accept' | 'close' | 'failed';

/**
 * How a connection ended, on its close event (the probe sees the transition):
 * `fin`: this host sent its FIN (close() or shutdown(), after or before the
 * peer's); `reset`: reset or aborted (RST sent or received, linger 0, timeout:
 * -> CLOSE without a FIN; see TcpEvent.errno); `destroyed`: the socket was
 * destroyed without either being seen.
 */
export type ConnectionEnd = 'fin' | 'reset' | 'destroyed';

/** Which end of the connection this host's socket is: it connected (client) or accepted (server). */
export type ConnectionRole = 'client' | 'server';

export interface TcpEvent {
  /** connect (C): outgoing connection established; accept (A); close (X); failed (F): a connect that never established. */
  readonly type: TcpEventType;
  /** Kernel event time (CLOCK_MONOTONIC), nanoseconds since boot. */
  readonly monotonicNs: bigint;
  /** Kernel event time converted to wall clock: nanoseconds since the Unix epoch. */
  readonly timeUnixNs: bigint;
  /** Process id (tgid) of the task the event names. */
  readonly pid: number;
  /** Thread id of that task. */
  readonly tid: number;
  /** Real user id of that task (what -u filters on). */
  readonly uid: number;
  /** Effective user id of that task. */
  readonly euid: number;
  /** This host's end of the connection; on close too, learned at connect/accept. */
  readonly role: ConnectionRole;
  /** Task command name (at most 15 bytes, as the kernel keeps it). */
  readonly comm: string;
  /** IP version on the wire; IPv4-mapped IPv6 sockets are reported as 4. */
  readonly ip: 4 | 6;
  /** Local address, without brackets (e.g. "10.0.0.1", "::1"). */
  readonly saddr: string;
  /** Remote address, without brackets. */
  readonly daddr: string;
  /** Local port. */
  readonly sport: number;
  /** Remote port. */
  readonly dport: number;
  /** Inode number of the socket's network namespace. */
  readonly netns: number;
  /** cgroup v2 id of the task. */
  readonly cgroupId: number;
  /** close only: nanoseconds from ESTABLISHED to close; 0 for connect/accept. */
  readonly durationNs: number;
  /** close only: bytes sent and acknowledged by the peer; 0 otherwise. */
  readonly bytesAcked: number;
  /** close only: bytes received; 0 otherwise. */
  readonly bytesReceived: number;
  /** connect only (the client): nanoseconds from SYN_SENT to ESTABLISHED, the handshake; 0 otherwise. */
  readonly handshakeNs: number;
  /** close only: the smoothed round-trip time at close (tcp_sock srtt_us / 8), microseconds; 0 otherwise or before any RTT sample. */
  readonly rttUs: number;
  /** close only: segments this host retransmitted over the connection's life (tcp_sock total_retrans); 0 otherwise. */
  readonly retransmits: number;
  /**
   * The error the kernel recorded on the socket (sk_err, an errno): failed:
   * why the connect failed (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH,
   * ENETUNREACH...; 0 when the application gave up first); close: the error
   * that ended it (e.g. ECONNRESET), 0 for an orderly close; 0 otherwise.
   */
  readonly errno: number;
  /** close only: how the connection ended; undefined for other events. */
  readonly end: ConnectionEnd | undefined;
  /**
   * This socket's initial sequence number and the peer's, as the kernel saw
   * them at ESTABLISHED (connect, accept and close; 0 for failed). Both ends of
   * one connection see the same pair, swapped. In-process only: used to derive
   * trace and span ids, never exported as such.
   */
  readonly localIsn: number;
  readonly peerIsn: number;
  /**
   * The container the task runs in (`container.id`: 64 hex digits), from its
   * cgroup path; undefined for host processes, or until resolved. Filled in by
   * the identity stage (src/identity/) before any output sees the event.
   */
  containerId: string | undefined;
  /** The Kubernetes pod uid (with dashes) of that cgroup path, like containerId. */
  podUid: string | undefined;
}

/** Counters of everything that was lost, from the kernel to the exporter. */
export interface DropCounters {
  /** Events the kernel could not put into the ring buffer (it was full). */
  readonly ringbufLost: number;
  /** Sockets whose state could not be tracked (per-socket map full). */
  readonly sockMapFull: number;
  /**
   * Runs of the probe the kernel skipped because a BPF program was already
   * running on that CPU, the same one for the tp_btf socket handlers, any for
   * the classic accept handlers (bpf_prog_info.recursion_misses): each may be
   * a missing event.
   */
  readonly probeMissed: number;
  /**
   * Connections whose end the probe never saw: an open connection's state was
   * still there when its socket's address was reused, because the kernel did
   * not run the probe at that socket's close and destruction. Each is a lost X.
   */
  readonly endsUnseen: number;
}
