// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcptracer.bpf.c - TCP connect (C), accept (A) and close (X) events, from
 * tracepoints only (no kprobes, no fentry): the stable ABI.
 *
 *   sock:inet_sock_set_state  every TCP state change of every socket (tp_btf)
 *   syscalls:sys_exit_accept4 / sys_exit_accept   runs in the accepting task
 *   tcp:tcp_destroy_sock      the socket is gone: drop its state (tp_btf)
 *
 * The two socket tracepoints are attached as BTF-typed raw tracepoints
 * (tp_btf): the program gets the struct sock itself, with no trace record
 * built for it first (perf's tracepoint glue was 1/8 of the probe's kernel
 * time), and the kernel's recursion guard is per program, so they still run
 * when an interrupt lands in the middle of another BPF program on that CPU -
 * ours or another tool's. A classic tracepoint skips its programs whenever any
 * tracing program is running on the CPU. The kernel still counts the runs it
 * skips (bpf_prog_info.recursion_misses); the loader reports them.
 *
 * Per socket (keyed by its kernel address, which never leaves the kernel) we keep
 * the tuple and both initial sequence numbers seen at ESTABLISHED - read late, at
 * accept or close, a reset socket can show zeros - and the task that owns the
 * connection:
 *
 *   connect: CLOSE->SYN_SENT runs in the connect()ing task; remember it. The
 *            SYN_SENT->ESTABLISHED transition runs in softirq (any task), so C is
 *            emitted there with the remembered task.
 *   failed:  SYN_SENT->CLOSE (refused, timed out, unreachable, or given up by the
 *            application) emits F with the connecting task and sk_err (--failed).
 *   accept:  SYN_RECV->ESTABLISHED (softirq) stores the tuple; the accept()
 *            syscall's exit, in the accepting task, finds the socket from the
 *            returned fd and emits A with that task. A connection reset while it
 *            waits to be accepted keeps its state (the kernel still hands it to
 *            accept()): its accept emits A, then its X with the time and error of
 *            the reset. One that is never accepted is freed silently at destruction.
 *   close:   one X per connection that had a C or an A, at the first of
 *            ESTABLISHED/CLOSE_WAIT -> FIN_WAIT1/LAST_ACK (close() or shutdown(),
 *            always in the closing task: that task is reported), -> CLOSE (reset
 *            or abort, possibly in softirq: the owner is reported), or the
 *            socket's destruction; the X says which (enum tcptracer_end).
 *
 * Initial sequence numbers: at SYN_SENT->ESTABLISHED (tcp_rcv_synsent_state_process,
 * after tcp_ack) and at SYN_RECV->ESTABLISHED (the child made by
 * tcp_create_openreq_child), snd_una is this socket's ISN + 1 and rcv_nxt the
 * peer's ISN + 1, so both ends see the same pair, swapped.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "kernel_types.h"
#include "tcptracer.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* include/net/tcp_states.h: part of the tracepoint ABI */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9

const volatile struct tcptracer_config cfg = { .targ_uid = (__u32)-1 };

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* An event in the ring buffer: 8-byte header + record, rounded up to 8. */
#define RINGBUF_RECORD_BYTES (8 + ((sizeof(struct tcptracer_event) + 7) & ~7))

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader */
} events SEC(".maps");

/*
 * Counters readable from user space; see enum tcptracer_stat. Mappable: the
 * loader reads them from memory, with no bpf() call, which a tracer that has
 * dropped its privileges could not make on kernels before 6.5 (with
 * unprivileged BPF disabled, every bpf() command needed CAP_BPF).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, TCPTRACER_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* bcc --cgroupmap / --mntnsmap: replaced by the user's pinned hash map when set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} cgroup_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} mount_ns_set SEC(".maps");

enum phase {
	PHASE_CONNECTING = 1, /* SYN_SENT: task known, not established yet */
	PHASE_ACCEPT_WAIT = 2, /* passive, established, not accepted yet */
	PHASE_OPEN = 3, /* C or A emitted; X pending */
	PHASE_ACCEPT_RESET = 4, /* passive, reset before accept(): A and X pending */
};

struct task_info {
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 euid;
	char comm[TASK_COMM_LEN];
};

struct sock_state {
	struct task_info owner;
	__u64 established_ns;
	__u64 closed_ns; /* PHASE_ACCEPT_RESET: when the reset came */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 phase;
	__u8 role; /* enum tcptracer_role */
	__u32 netns;
	__u32 local_isn;
	__u32 peer_isn;
	__u16 error; /* PHASE_ACCEPT_RESET: sk_err at the reset */
	__u8 end;    /* PHASE_ACCEPT_RESET: how it ended */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* socket address: stays in the kernel */
	__type(value, struct sock_state);
} socks SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * The task the event names. comm is the process's name (the thread group
 * leader's): a multithreaded program's last thread to exit, which closes its
 * sockets, is often a runtime helper thread with a name of its own.
 */
static __always_inline void current_task(struct task_info *t)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();

	t->pid = id >> 32;
	t->tid = (__u32)id;
	t->uid = (__u32)bpf_get_current_uid_gid();
	t->euid = BPF_CORE_READ(task, cred, euid.val);
	t->cgroup_id = bpf_get_current_cgroup_id();
	BPF_CORE_READ_STR_INTO(&t->comm, task, group_leader, comm);
}

/* pid, uid, cgroup and mount-namespace filters: about the current task. */
static __always_inline bool task_selected(const struct task_info *t)
{
	if (cfg.exclude_tgid && t->pid == cfg.exclude_tgid)
		return false;
	if (cfg.targ_tgid && t->pid != cfg.targ_tgid)
		return false;
	if (cfg.targ_uid != (__u32)-1 && t->uid != cfg.targ_uid)
		return false;
	if (cfg.filter_cgroup && !bpf_map_lookup_elem(&cgroup_map, &t->cgroup_id))
		return false;
	if (cfg.filter_mntns) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		__u64 mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);

		if (!bpf_map_lookup_elem(&mount_ns_set, &mntns))
			return false;
	}
	return true;
}

static __always_inline __u32 sock_netns(const void *sk)
{
	return BPF_CORE_READ((struct sock *)sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline bool is_v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/*
 * Copy the tuple from the socket. An AF_INET6 socket talking to an
 * IPv4-mapped address (::ffff:a.b.c.d) speaks IPv4 on the wire: report it as
 * AF_INET with the IPv4 addresses, so -4/-6 and the IP column say what the
 * network sees.
 */
static __always_inline void copy_tuple(struct sock_state *s, const struct sock *sk)
{
	s->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	s->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (sk->__sk_common.skc_family == AF_INET6) {
		BPF_CORE_READ_INTO(&s->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&s->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		if (!is_v4_mapped(s->saddr) || !is_v4_mapped(s->daddr)) {
			s->family = AF_INET6;
			return;
		}
	}
	s->family = AF_INET;
	__builtin_memset(s->saddr, 0, 16);
	__builtin_memset(s->daddr, 0, 16);
	*(__be32 *)s->saddr = sk->__sk_common.skc_rcv_saddr;
	*(__be32 *)s->daddr = sk->__sk_common.skc_daddr;
}

static __always_inline bool family_selected(__u16 family)
{
	return !cfg.targ_family || family == cfg.targ_family;
}

/*
 * Wake the reader once per crossing of the threshold, not for every record
 * past it: a wake-up is an irq_work (a self-IPI, costly in a VM), and a reader
 * that is awake drains everything anyway. Below the threshold nobody is woken;
 * the reader's poll timeout bounds the delay.
 */
static __always_inline void submit(struct tcptracer_event *e)
{
	__u64 flags = 0;

	if (cfg.wakeup_data_bytes) {
		/* includes this record: reserved, not yet committed */
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

		flags = avail >= cfg.wakeup_data_bytes && avail - RINGBUF_RECORD_BYTES < cfg.wakeup_data_bytes ?
				BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/*
 * One record. For a close, `end` and `error` say how it ended and the byte
 * counters are read from the socket; `now` is the event's time.
 */
static __always_inline void emit(const struct sock_state *s, const struct task_info *t,
				 __u8 type, const void *sk, __u64 now, __u8 end, __u16 error)
{
	struct tcptracer_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(TCPTRACER_STAT_RINGBUF_LOST);
		return;
	}
	e->ts_ns = now;
	e->cgroup_id = t->cgroup_id;
	e->pid = t->pid;
	e->tid = t->tid;
	e->uid = t->uid;
	e->euid = t->euid;
	e->netns = s->netns;
	__builtin_memcpy(e->saddr, s->saddr, 16);
	__builtin_memcpy(e->daddr, s->daddr, 16);
	e->sport = s->sport;
	e->dport = s->dport;
	e->family = s->family;
	e->type = type;
	e->role = s->role;
	__builtin_memcpy(e->comm, t->comm, TASK_COMM_LEN);
	e->local_isn = s->local_isn;
	e->peer_isn = s->peer_isn;
	e->error = error;
	e->end = end;
	e->__reserved = 0;
	if (type == TCPTRACER_CLOSE) {
		const struct tcp_sock *tp = sk;

		e->duration_ns = now - s->established_ns;
		e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	} else {
		e->duration_ns = 0;
		e->bytes_acked = 0;
		e->bytes_received = 0;
	}
	submit(e);
}

/* Both initial sequence numbers, at ->ESTABLISHED (see the top of this file). */
static __always_inline void copy_isns(struct sock_state *s, const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	s->local_isn = BPF_CORE_READ(tp, snd_una) - 1;
	s->peer_isn = BPF_CORE_READ(tp, rcv_nxt) - 1;
}

static __always_inline void store(__u64 key, const struct sock_state *s)
{
	if (bpf_map_update_elem(&socks, &key, s, BPF_ANY))
		count(TCPTRACER_STAT_SOCK_MAP_FULL);
}

/*
 * The error the kernel recorded: sk_err, else the soft error (an ICMP error
 * that arrived while the connecting task held the socket is kept in
 * sk_err_soft; Linux itself reports it that way when SYN retries run out).
 */
static __always_inline __u16 sock_error(const struct sock *sk)
{
	int err = BPF_CORE_READ(sk, sk_err);

	return (__u16)(err ? err : BPF_CORE_READ(sk, sk_err_soft));
}

/*
 * A transition that ends the connection: emit its X once (the current task if
 * it is the closing one, else the owner) and forget the socket. A connection
 * reset before accept() keeps its state for the accept; a failed connect is an
 * F with --failed.
 */
static __always_inline void close_conn(__u64 key, const struct sock *sk, bool in_closing_task, __u8 end)
{
	struct sock_state *s = bpf_map_lookup_elem(&socks, &key);
	struct task_info closer;
	__u16 error;

	if (!s)
		return;
	error = end == TCPTRACER_END_FIN ? 0 : sock_error(sk);
	switch (s->phase) {
	case PHASE_OPEN:
		if (in_closing_task) {
			current_task(&closer);
			emit(s, &closer, TCPTRACER_CLOSE, sk, bpf_ktime_get_ns(), end, error);
		} else {
			emit(s, &s->owner, TCPTRACER_CLOSE, sk, bpf_ktime_get_ns(), end, error);
		}
		break;
	case PHASE_ACCEPT_WAIT:
		if (end == TCPTRACER_END_RESET) {
			s->phase = PHASE_ACCEPT_RESET;
			s->closed_ns = bpf_ktime_get_ns();
			s->end = end;
			s->error = error;
			return;
		}
		break;
	case PHASE_CONNECTING:
		if (cfg.report_failed && end == TCPTRACER_END_RESET) {
			copy_tuple(s, sk);
			if (family_selected(s->family))
				emit(s, &s->owner, TCPTRACER_FAILED, sk, bpf_ktime_get_ns(), 0, error);
		}
		break;
	}
	/* Nothing more to report for this connection; a reconnect starts afresh. */
	bpf_map_delete_elem(&socks, &key);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct sock_state *s;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;

	switch (newstate) {
	case TCP_SYN_SENT: {
		/* connect() in the calling task */
		struct sock_state n = {};

		current_task(&n.owner);
		if (!task_selected(&n.owner))
			return 0;
		n.netns = sock_netns(sk);
		if (cfg.targ_netns && n.netns != cfg.targ_netns)
			return 0;
		n.phase = PHASE_CONNECTING;
		n.role = TCPTRACER_ROLE_CLIENT;
		store(key, &n);
		return 0;
	}
	case TCP_ESTABLISHED:
		if (oldstate == TCP_SYN_SENT) {
			s = bpf_map_lookup_elem(&socks, &key);
			if (!s || s->phase != PHASE_CONNECTING)
				return 0;
			copy_tuple(s, sk);
			if (!family_selected(s->family)) {
				bpf_map_delete_elem(&socks, &key);
				return 0;
			}
			copy_isns(s, sk);
			s->established_ns = bpf_ktime_get_ns();
			s->phase = PHASE_OPEN;
			emit(s, &s->owner, TCPTRACER_CONNECT, sk, s->established_ns, 0, 0);
		} else if (oldstate == TCP_SYN_RECV) {
			struct sock_state n = {};

			n.netns = sock_netns(sk);
			if (cfg.targ_netns && n.netns != cfg.targ_netns)
				return 0;
			copy_tuple(&n, sk);
			if (!family_selected(n.family))
				return 0;
			copy_isns(&n, sk);
			n.established_ns = bpf_ktime_get_ns();
			n.phase = PHASE_ACCEPT_WAIT;
			n.role = TCPTRACER_ROLE_SERVER;
			store(key, &n);
		}
		return 0;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		/* tcp_close() or tcp_shutdown(): always in the closing task */
		if (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT)
			close_conn(key, sk, true, TCPTRACER_END_FIN);
		return 0;
	case TCP_CLOSE:
		/* reset, abort, failed connect: maybe in softirq, so report the owner */
		close_conn(key, sk, false, TCPTRACER_END_RESET);
		return 0;
	}
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(handle_destroy_sock, struct sock *sk)
{
	close_conn((__u64)sk, sk, false, TCPTRACER_END_DESTROYED);
	return 0;
}

/* The socket behind the fd accept() returned, in the current task's fd table. */
static __always_inline __u64 sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file;
	struct socket *sock;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	return (__u64)BPF_CORE_READ(sock, sk);
}

static __always_inline int handle_accept_exit(long ret)
{
	struct sock_state *s;
	__u64 key;

	if (ret < 0)
		return 0;
	key = sock_of_fd(ret);
	if (!key)
		return 0;
	s = bpf_map_lookup_elem(&socks, &key);
	if (!s || (s->phase != PHASE_ACCEPT_WAIT && s->phase != PHASE_ACCEPT_RESET))
		return 0;
	current_task(&s->owner);
	if (!task_selected(&s->owner)) {
		bpf_map_delete_elem(&socks, &key);
		return 0;
	}
	emit(s, &s->owner, TCPTRACER_ACCEPT, (const void *)key, bpf_ktime_get_ns(), 0, 0);
	if (s->phase == PHASE_ACCEPT_RESET) {
		/* reset while it waited: its X follows at once, timed at the reset */
		emit(s, &s->owner, TCPTRACER_CLOSE, (const void *)key, s->closed_ns, s->end, s->error);
		bpf_map_delete_elem(&socks, &key);
		return 0;
	}
	s->phase = PHASE_OPEN;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return handle_accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_accept_exit_legacy(struct trace_event_raw_sys_exit *ctx)
{
	return handle_accept_exit(ctx->ret);
}
