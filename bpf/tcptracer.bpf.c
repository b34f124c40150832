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
 *            One accept() takes before that transition ran (it is queued first;
 *            TCP Fast Open queues it at the SYN) is begun from the socket there.
 *   close:   one X per connection that had a C or an A, at the first of
 *            ESTABLISHED/CLOSE_WAIT -> FIN_WAIT1/LAST_ACK (close() or shutdown(),
 *            always in the closing task: that task is reported), -> CLOSE (reset
 *            or abort, possibly in softirq: the owner is reported), or the
 *            socket's destruction; the X says which (enum tcptracer_end).
 *
 * Concurrency. The socket handlers run wherever the kernel changes the socket:
 * in the task that calls connect(), close(), shutdown() or exits, or in softirq
 * on whichever CPU received the segment. All of them hold the socket's lock
 * (lock_sock, or bh_lock_sock in softirq; a segment that finds the socket owned
 * by a task waits in its backlog and is processed when the task releases it), so
 * for one socket they never overlap: a connect's CLOSE->SYN_SENT and its own
 * failure, an established connection's close and a reset, a close and the
 * destruction that follows, the last close of a socket shared by threads or
 * processes (only the last file reference closes it). The one handler that
 * holds no lock is accept()'s exit: it runs after the socket left the listener's
 * queue, in the accepting task, on any CPU, while a reset (or, before it, the
 * SYN_RECV->ESTABLISHED transition) may run on another CPU for the same socket.
 *
 * So each socket's `phase` changes only by compare-and-swap, and each event has
 * exactly one owner, the handler whose swap succeeded:
 *   C  SYN_SENT->ESTABLISHED (CONNECTING -> OPEN; locked, nothing races it).
 *   A  accept()'s exit, after ACCEPT_WAIT -> ACCEPTING (or ENDED_QUEUED -> DONE).
 *   X  the ending handler that swaps OPEN -> DONE; or, when the connection ended
 *      before its A was out, accept()'s exit: the ending records when and how it
 *      ended and swaps ACCEPT_WAIT -> ENDED_QUEUED or ACCEPTING -> ENDED_ACCEPTING,
 *      and accept()'s exit, finding that phase when it swaps on, emits the X.
 *   F  the ending handler that swaps CONNECTING -> DONE (--failed).
 * A loser looks at the phase it lost to and acts on that instead; the A always
 * goes into the ring buffer before the X of the same connection. The entry is
 * deleted by the handler that made it DONE; the map frees deleted entries only
 * after an RCU grace period, so a handler still holding one reads valid memory.
 * Not seen: a socket that another thread closes before accept() has returned its
 * fd (its destruction frees it as never accepted).
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

/*
 * Not read by the programs: it puts struct tcptracer_event into the object's
 * BTF (a type used only through pointers in the programs leaves none), where
 * the loader reads the layout it exports to src/event.ts's test. All zeros.
 */
const volatile struct tcptracer_event event_layout = {};

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

/*
 * Where a connection is, per socket; see "Concurrency" at the top. Every change
 * of phase is a compare-and-swap: the handler whose swap succeeds owns what
 * that change emits, and no other handler emits it.
 */
enum phase {
	PHASE_CONNECTING = 1,     /* SYN_SENT: task known, not established yet */
	PHASE_ACCEPT_WAIT = 2,    /* passive, established, not accepted yet */
	PHASE_ACCEPTING = 3,      /* accept()'s exit is emitting the A */
	PHASE_OPEN = 4,           /* C or A emitted; X pending: the ending that claims it emits it */
	PHASE_ENDED_QUEUED = 5,   /* ended before accept() took it: A and X pending */
	PHASE_ENDED_ACCEPTING = 6, /* ended while accept()'s exit emitted the A: it emits the X too */
	PHASE_DONE = 7,           /* claimed for the last time; the entry is being deleted */
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
	__u64 handshake_ns; /* client: SYN_SENT's time, then (at ESTABLISHED) the handshake's length */
	__u64 closed_ns; /* PHASE_ENDED_*: when it ended */
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 phase;     /* enum phase: changed only by compare-and-swap */
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 role; /* enum tcptracer_role */
	__u8 end;    /* PHASE_ENDED_*: how it ended */
	__u32 netns;
	__u32 local_isn;
	__u32 peer_isn;
	__u16 error; /* PHASE_ENDED_*: its error */
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
 * Copy the tuple from the socket (read through the helper: accept()'s exit has
 * an untyped pointer to it, not the tracepoints' BTF one). An AF_INET6 socket talking to an
 * IPv4-mapped address (::ffff:a.b.c.d) speaks IPv4 on the wire: report it as
 * AF_INET with the IPv4 addresses, so -4/-6 and the IP column say what the
 * network sees.
 */
static __always_inline void copy_tuple(struct sock_state *s, const struct sock *sk)
{
	s->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	s->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6) {
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
	*(__be32 *)s->saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	*(__be32 *)s->daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
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
		e->rtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* kept scaled by 8 */
		e->retransmits = BPF_CORE_READ(tp, total_retrans);
	} else {
		e->duration_ns = 0;
		e->bytes_acked = 0;
		e->bytes_received = 0;
		e->rtt_us = 0;
		e->retransmits = 0;
	}
	e->handshake_ns = type == TCPTRACER_CONNECT ? s->handshake_ns : 0;
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
 * A new socket's state replaces what is under its key (its address). An entry
 * still there belongs to a socket that was freed with no handler ending it; if
 * that connection was open, its X was never emitted: counted, not silent. The
 * kernel has been seen not to run the programs for a socket's close and its
 * destruction (about once in 15M connections under a saturating load, with no
 * recursion miss counted); this is where that shows. A socket address that is
 * never reused keeps its entry until the tracer stops.
 */
static __always_inline void replace(__u64 key, const struct sock_state *old, const struct sock_state *n)
{
	if (old && old->phase == PHASE_OPEN)
		count(TCPTRACER_STAT_END_UNSEEN);
	store(key, n);
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

/* Move the phase from `from` to `to`; returns what it was (`from`: this handler won). */
static __always_inline __u32 claim(struct sock_state *s, __u32 from, __u32 to)
{
	return __sync_val_compare_and_swap(&s->phase, from, to);
}

/* How a connection ended, for the handler that will emit its X later. */
static __always_inline void record_end(struct sock_state *s, __u64 now, __u8 end, __u16 error)
{
	s->closed_ns = now;
	s->end = end;
	s->error = error;
}

/*
 * A transition that ends the connection: emit its X once (the current task if
 * it is the closing one, else the owner) and forget the socket; or, when
 * accept() has not emitted the A yet, leave the X to it. A failed connect is
 * an F with --failed.
 *
 * Each pass either wins a claim and returns, or loses it because another
 * handler moved the phase on, and looks again at the phase it moved to. While
 * a socket is being ended, the others can move it on at most three times
 * (ACCEPT_WAIT -> ACCEPTING -> OPEN -> DONE), so the fourth pass always finds
 * a phase it can act on or must leave alone.
 */
static __always_inline void close_conn(__u64 key, const struct sock *sk, bool in_closing_task, __u8 end)
{
	struct sock_state *s = bpf_map_lookup_elem(&socks, &key);
	struct task_info closer;
	__u16 error;
	__u64 now;
	__u32 phase;

	if (!s)
		return;
	error = end == TCPTRACER_END_FIN ? 0 : sock_error(sk);
	now = bpf_ktime_get_ns();
	phase = s->phase;
	for (int pass = 0; pass < 4; pass++) {
		switch (phase) {
		case PHASE_OPEN:
			phase = claim(s, PHASE_OPEN, PHASE_DONE);
			if (phase != PHASE_OPEN)
				continue;
			if (in_closing_task) {
				current_task(&closer);
				emit(s, &closer, TCPTRACER_CLOSE, sk, now, end, error);
			} else {
				emit(s, &s->owner, TCPTRACER_CLOSE, sk, now, end, error);
			}
			bpf_map_delete_elem(&socks, &key);
			return;
		case PHASE_ACCEPT_WAIT:
			if (end == TCPTRACER_END_DESTROYED) {
				/* never accepted: nothing to report */
				phase = claim(s, PHASE_ACCEPT_WAIT, PHASE_DONE);
				if (phase != PHASE_ACCEPT_WAIT)
					continue;
				bpf_map_delete_elem(&socks, &key);
				return;
			}
			/* reset while queued: the kernel still hands it to accept() */
			record_end(s, now, end, error);
			phase = claim(s, PHASE_ACCEPT_WAIT, PHASE_ENDED_QUEUED);
			if (phase != PHASE_ACCEPT_WAIT)
				continue;
			return;
		case PHASE_ACCEPTING:
			record_end(s, now, end, error);
			phase = claim(s, PHASE_ACCEPTING, PHASE_ENDED_ACCEPTING);
			if (phase != PHASE_ACCEPTING)
				continue;
			return;
		case PHASE_ENDED_QUEUED:
			/* destroyed with the listener, never accepted */
			if (end != TCPTRACER_END_DESTROYED)
				return;
			phase = claim(s, PHASE_ENDED_QUEUED, PHASE_DONE);
			if (phase != PHASE_ENDED_QUEUED)
				continue;
			bpf_map_delete_elem(&socks, &key);
			return;
		case PHASE_CONNECTING:
			phase = claim(s, PHASE_CONNECTING, PHASE_DONE);
			if (phase != PHASE_CONNECTING)
				continue;
			if (cfg.report_failed && end == TCPTRACER_END_RESET) {
				copy_tuple(s, sk);
				if (family_selected(s->family))
					emit(s, &s->owner, TCPTRACER_FAILED, sk, now, 0, error);
			}
			/* a reconnect starts afresh */
			bpf_map_delete_elem(&socks, &key);
			return;
		default:
			/* PHASE_ENDED_ACCEPTING, PHASE_DONE: another handler emits */
			return;
		}
	}
}

/* The same connection: a server socket with the same tuple. */
static __always_inline bool same_tuple(const struct sock_state *a, const struct sock_state *b)
{
	const __u64 *x = (const __u64 *)a->saddr, *y = (const __u64 *)b->saddr;
	const __u64 *u = (const __u64 *)a->daddr, *v = (const __u64 *)b->daddr;

	return a->role == b->role && a->sport == b->sport && a->dport == b->dport &&
	       x[0] == y[0] && x[1] == y[1] && u[0] == v[0] && u[1] == v[1];
}

/*
 * A passive connection's state, from the socket: at SYN_RECV->ESTABLISHED, or
 * at accept() when accept() got there first. False when filtered out.
 */
static __always_inline bool passive_state(struct sock_state *n, const struct sock *sk)
{
	n->netns = sock_netns(sk);
	if (cfg.targ_netns && n->netns != cfg.targ_netns)
		return false;
	copy_tuple(n, sk);
	if (!family_selected(n->family))
		return false;
	copy_isns(n, sk);
	n->established_ns = bpf_ktime_get_ns();
	n->phase = PHASE_ACCEPT_WAIT;
	n->role = TCPTRACER_ROLE_SERVER;
	return true;
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
		n.handshake_ns = bpf_ktime_get_ns();
		/* usually nothing is there: one update, no lookup */
		if (bpf_map_update_elem(&socks, &key, &n, BPF_NOEXIST))
			replace(key, bpf_map_lookup_elem(&socks, &key), &n);
		return 0;
	}
	case TCP_ESTABLISHED:
		if (oldstate == TCP_SYN_SENT) {
			/* under the socket's lock, like every other change of a client's phase */
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
			s->handshake_ns = s->established_ns - s->handshake_ns;
			emit(s, &s->owner, TCPTRACER_CONNECT, sk, s->established_ns, 0, 0);
			claim(s, PHASE_CONNECTING, PHASE_OPEN);
		} else if (oldstate == TCP_SYN_RECV) {
			struct sock_state n = {};

			if (!passive_state(&n, sk))
				return 0;
			if (!bpf_map_update_elem(&socks, &key, &n, BPF_NOEXIST))
				return 0;
			/*
			 * accept() may have taken the socket first (it is queued before
			 * this transition runs; TCP Fast Open queues it at the SYN) and
			 * begun it from the socket: keep that. Anything else under this
			 * key is left from a socket that was here before.
			 */
			s = bpf_map_lookup_elem(&socks, &key);
			if (s && same_tuple(s, &n))
				return 0;
			replace(key, s, &n);
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

/* The TCP socket behind the fd accept() returned, in the current task's fd table. */
static __always_inline const struct sock *sock_of_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file;
	struct socket *sock;
	const struct sock *sk;
	__u16 family;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6 ? sk : NULL;
}

/*
 * The state of an accepted socket whose SYN_RECV->ESTABLISHED this probe has
 * not seen (yet): begun from the socket, as that transition would. Inserted
 * only if still absent; either way, the entry now under the key.
 */
static __always_inline struct sock_state *adopt(__u64 key, const struct sock *sk)
{
	struct sock_state n = {};

	if (!passive_state(&n, sk))
		return NULL;
	if (bpf_map_update_elem(&socks, &key, &n, BPF_NOEXIST)) {
		/* inserted meanwhile by SYN_RECV->ESTABLISHED, or no room */
		struct sock_state *s = bpf_map_lookup_elem(&socks, &key);

		if (!s)
			count(TCPTRACER_STAT_SOCK_MAP_FULL);
		return s;
	}
	return bpf_map_lookup_elem(&socks, &key);
}

/*
 * accept() returned a socket: emit its A, in the accepting task. The ending
 * handlers may run on another CPU at any moment of this (see "Concurrency"):
 * the A is emitted while the phase says ACCEPTING, so an ending that comes
 * meanwhile records itself and leaves its X to us; one that came before left
 * ENDED_QUEUED.
 */
static __always_inline int handle_accept_exit(long ret)
{
	const struct sock *sk;
	struct sock_state *s;
	struct task_info task;
	bool selected;
	__u32 phase;
	__u64 key;

	if (ret < 0)
		return 0;
	sk = sock_of_fd(ret);
	if (!sk)
		return 0;
	key = (__u64)sk;
	s = bpf_map_lookup_elem(&socks, &key);
	if (!s)
		s = adopt(key, sk);
	if (!s)
		return 0;
	current_task(&task);
	selected = task_selected(&task);
	phase = claim(s, PHASE_ACCEPT_WAIT, selected ? PHASE_ACCEPTING : PHASE_DONE);
	if (phase == PHASE_ACCEPT_WAIT) {
		if (!selected) {
			bpf_map_delete_elem(&socks, &key);
			return 0;
		}
		s->owner = task;
		emit(s, &task, TCPTRACER_ACCEPT, sk, bpf_ktime_get_ns(), 0, 0);
		phase = claim(s, PHASE_ACCEPTING, PHASE_OPEN);
		if (phase == PHASE_ACCEPTING)
			return 0;
		/* PHASE_ENDED_ACCEPTING: it ended while we emitted the A */
	} else if (phase == PHASE_ENDED_QUEUED) {
		if (claim(s, PHASE_ENDED_QUEUED, PHASE_DONE) != PHASE_ENDED_QUEUED)
			return 0; /* destroyed meanwhile: it was never ours */
		if (!selected) {
			bpf_map_delete_elem(&socks, &key);
			return 0;
		}
		emit(s, &task, TCPTRACER_ACCEPT, sk, bpf_ktime_get_ns(), 0, 0);
	} else {
		return 0;
	}
	/* its X follows at once, timed when it ended */
	emit(s, &task, TCPTRACER_CLOSE, sk, s->closed_ns, s->end, s->error);
	bpf_map_delete_elem(&socks, &key);
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
