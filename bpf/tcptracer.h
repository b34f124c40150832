/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tcptracer.h - the one definition of what crosses from the kernel to user space.
 *
 * Included by the BPF program (tcptracer.bpf.c) and by the native loader
 * (loader/). The TypeScript decoder (src/event.ts) mirrors it;
 * test/unit-layout.test.ts compares that mirror with struct tcptracer_event as
 * the compiled probe's BTF lays it out (the loader exports it), and compiles
 * this header with -Wpadded -Werror so no hidden padding can creep in: every
 * field is naturally aligned and the size is a multiple of 8.
 */
#ifndef TCPTRACER_H
#define TCPTRACER_H

#define TASK_COMM_LEN 16

/* Event types, numbered as in bcc's tcptracer. */
enum tcptracer_event_type {
	TCPTRACER_CONNECT = 1, /* outgoing connection reached ESTABLISHED */
	TCPTRACER_ACCEPT = 2,  /* a process accepted an established connection */
	TCPTRACER_CLOSE = 3,   /* an established connection was closed */
	TCPTRACER_FAILED = 4,  /* a connect went SYN_SENT -> CLOSE without establishing (--failed) */
};

/* How a connection ended (on TCPTRACER_CLOSE; 0 on the other events). */
enum tcptracer_end {
	TCPTRACER_END_FIN = 1,       /* this host sent its FIN: close() or shutdown() */
	TCPTRACER_END_RESET = 2,     /* -> CLOSE without a FIN: RST sent or received, abort, timeout */
	TCPTRACER_END_DESTROYED = 3, /* the socket was destroyed with neither seen */
};

/* Which end of the connection the socket is: set on every event, close included. */
enum tcptracer_role {
	TCPTRACER_ROLE_CLIENT = 1, /* it connect()ed */
	TCPTRACER_ROLE_SERVER = 2, /* it was accept()ed */
};

/* Indexes of the kernel-side counters in the "stats" array map. */
enum tcptracer_stat {
	TCPTRACER_STAT_RINGBUF_LOST = 0, /* bpf_ringbuf_reserve failed: event lost */
	TCPTRACER_STAT_SOCK_MAP_FULL = 1, /* per-socket state could not be stored */
	TCPTRACER_STAT_END_UNSEEN = 2, /* an open connection's entry outlived its socket: its X is lost */
	TCPTRACER_STAT_MAX = 3,
};

/*
 * Options, set by the loader between open and load (read-only in the kernel,
 * so the verifier prunes what is switched off). 0 means "not set", except
 * targ_uid where it is (__u32)-1, since uid 0 is a real filter.
 */
struct tcptracer_config {
	__u64 wakeup_data_bytes; /* wake the reader once this much is waiting; 0: adaptive */
	__u32 targ_tgid;         /* -p */
	__u32 targ_uid;          /* -u */
	__u32 targ_netns;        /* -N: network namespace inode */
	__u16 targ_family;       /* -4 / -6: AF_INET or AF_INET6 */
	__u8 filter_cgroup;      /* --cgroupmap: task's cgroup id must be a key of cgroup_map */
	__u8 filter_mntns;       /* --mntnsmap: task's mount ns inode must be a key of mount_ns_set */
	__u32 exclude_tgid;      /* the tracer's own process: its connections are not traced */
	__u8 report_failed;      /* --failed: emit TCPTRACER_FAILED events */
	__u8 __pad[3];
};

struct tcptracer_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id;      /* cgroup v2 id of the task the event names */
	__u64 duration_ns;    /* close: time since ESTABLISHED; 0 otherwise */
	__u64 bytes_acked;    /* close: bytes sent and acknowledged; 0 otherwise */
	__u64 bytes_received; /* close: bytes received; 0 otherwise */
	__u64 handshake_ns;   /* connect (client): SYN_SENT -> ESTABLISHED; 0 otherwise */
	__u32 pid;            /* tgid */
	__u32 tid;
	__u32 uid;            /* real user id (what -u filters on) */
	__u32 euid;           /* effective user id */
	__u32 netns;          /* network namespace inode of the socket */
	__u32 rtt_us;         /* close: smoothed RTT (tcp_sock srtt_us >> 3), microseconds; 0 otherwise */
	__u32 retransmits;    /* close: segments retransmitted (tcp_sock total_retrans); 0 otherwise */
	__u8 saddr[16];       /* local address: IPv4 in the first 4 bytes */
	__u8 daddr[16];       /* remote address */
	__u16 sport;          /* local port, host byte order */
	__u16 dport;          /* remote port, host byte order */
	__u16 family;         /* AF_INET or AF_INET6 (IPv4-mapped IPv6 is reported as AF_INET) */
	__u8 type;            /* enum tcptracer_event_type */
	__u8 role;            /* enum tcptracer_role: which end this host is */
	char comm[TASK_COMM_LEN]; /* process name (thread group leader's comm) */
	__u32 local_isn;      /* this socket's initial sequence number, seen at ESTABLISHED; 0 on failed */
	__u32 peer_isn;       /* the peer's initial sequence number; 0 on failed */
	__u16 error;          /* sk_err: failed: why; close: what ended it (0 for a FIN); else 0 */
	__u8 end;             /* enum tcptracer_end: close only */
	__u8 __reserved;      /* explicit padding, always 0 */
};

#endif /* TCPTRACER_H */
