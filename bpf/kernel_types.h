/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel_types.h - the few kernel types tcptracer.bpf.c reads, instead of a
 * multi-megabyte vmlinux.h. Only the fields used are declared; with
 * preserve_access_index, libbpf relocates every access against the running
 * kernel's BTF (CO-RE), so offsets here are irrelevant and the build does not
 * depend on the build host's kernel.
 */
#ifndef TCPTRACER_KERNEL_TYPES_H
#define TCPTRACER_KERNEL_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* syscalls:sys_exit_* */
struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

/* The kernel nests some of these in anonymous unions: CO-RE finds them by name. */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol; /* a bitfield before Linux 5.6; tp_btf programs need later kernels anyway */
	int sk_err;
	int sk_err_soft;
};

/*
 * The local port as inet_sport: skc_num is cleared when a closing socket
 * gives its port back (inet_put_port, before the ->CLOSE tracepoint fires),
 * inet_sport is not.
 */
struct inet_sock {
	__be16 inet_sport;
};

struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 snd_una;
	__u32 rcv_nxt;
	__u32 srtt_us;       /* smoothed RTT, microseconds << 3 */
	__u32 total_retrans; /* segments retransmitted over the connection's life */
};

struct socket {
	struct sock *sk;
};

struct file {
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
};

typedef struct {
	unsigned int val;
} kuid_t;

struct cred {
	kuid_t euid;
};

struct task_struct {
	const struct cred *cred;
	struct task_struct *group_leader;
	char comm[16];
	struct files_struct *files;
	struct nsproxy *nsproxy;
};

#pragma clang attribute pop

#endif /* TCPTRACER_KERNEL_TYPES_H */
