// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor - the cheapest possible consumer of the tracer's probe, for bench/run.ts.
 *
 *   floor [--comm COMM] [--check]
 *
 * Loads the SAME compiled object the CLI loads, through the same libbpf
 * skeleton (build/Release/obj/gen/tcptracer.skel.h, which embeds
 * build/Release/tcptracer.bpf.o), with the settings the Node-API loader
 * (bpf/loader/tracer.c) uses by default: `cfg` in its .rodata (all filters off,
 * wakeup_data_bytes 64 KiB), ring buffer 8 MiB, 100 ms poll with a consume when
 * the poll times out. Each record is only counted (by type, and whether its comm
 * is COMM; the per-type counts are of COMM's events). This is what draining the kernel costs when user space does nothing.
 *
 * Prints "Tracing TCP established connections. Ctrl-C to end." on stderr once
 * attached and "count N" on stdout whenever the total changed (at most every
 * 100 ms). On SIGINT/SIGTERM: detach, drain what is left, read the kernel's
 * counters from the "stats" map and print one JSON line on stdout, with
 * prog_misses: the runs of the probe's programs the kernel skipped (bpf_prog_info
 * recursion_misses: a BPF program was already running on that CPU).
 *
 * --check: also follow each connection of COMM (loopback, one netns: a client
 * is known by its local port, a server connection by its peer's port) and
 * report on stderr every connection that opens twice without an X, closes
 * without having opened, or is still open at the end: where an event went
 * missing, and what came before it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "tcptracer.h"
#include "tcptracer.skel.h"

static volatile sig_atomic_t stopping;
static unsigned long long total, matched, malformed, by_type[5]; /* by_type: matched events only */
static char want_comm[TASK_COMM_LEN];
static int check;
static unsigned long long anomalies;

/* --check: per connection (role, local port, peer port), the event that opened it (type 0: closed) */
#define CHECK_SLOTS (1 << 20)
struct opened {
	__u64 ts_ns;
	__u32 key; /* 0: empty slot */
	__u32 tid;
	__u8 type;
};
static struct opened conns[CHECK_SLOTS];

static const char *type_name(unsigned t)
{
	return t == TCPTRACER_CONNECT ? "C" : t == TCPTRACER_ACCEPT ? "A" : t == TCPTRACER_CLOSE ? "X" : t == 4 ? "F" : "?";
}

static void anomaly(const char *what, const struct tcptracer_event *e, const struct opened *o)
{
	if (++anomalies > 20)
		return;
	fprintf(stderr, "check: %s: %s %s port %u->%u tid %u ts %llu; before: %s tid %u ts %llu\n", what,
		type_name(e->type), e->role == TCPTRACER_ROLE_CLIENT ? "client" : "server", e->sport, e->dport,
		e->tid, (unsigned long long)e->ts_ns, type_name(o->type), o->tid, (unsigned long long)o->ts_ns);
}

static void follow(const struct tcptracer_event *e)
{
	/* one netns, loopback: the ports and the role tell a connection's ends apart */
	__u32 key = ((__u32)e->sport << 16 | e->dport) ^ (e->role == TCPTRACER_ROLE_CLIENT ? 0 : 0x80000001u);
	__u32 slot = (key * 2654435761u) & (CHECK_SLOTS - 1);
	struct opened *o;

	key |= 1; /* never 0 */
	while (conns[slot].key && conns[slot].key != key)
		slot = (slot + 1) & (CHECK_SLOTS - 1);
	o = &conns[slot];
	o->key = key;

	if (e->type == TCPTRACER_CLOSE) {
		if (!o->type)
			anomaly("close without open", e, o);
		o->type = 0;
	} else {
		if (o->type)
			anomaly("opened twice, no close between", e, o);
		o->type = e->type;
	}
	o->ts_ns = e->ts_ns;
	o->tid = e->tid;
}

static void report_still_open(void)
{
	for (int i = 0; i < CHECK_SLOTS; i++) {
		const struct opened *o = &conns[i];

		if (o->type && ++anomalies <= 20)
			fprintf(stderr, "check: still open at the end: %s ports %u/%u tid %u ts %llu\n",
				type_name(o->type), o->key >> 16, (o->key & 0xffff) ^ 1, o->tid,
				(unsigned long long)o->ts_ns);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	const struct tcptracer_event *e = data;

	(void)ctx;
	if (size != sizeof(*e)) {
		malformed++;
		return 0;
	}
	total++;
	if (!want_comm[0] || !strncmp(e->comm, want_comm, TASK_COMM_LEN)) {
		matched++;
		if (e->type < 5)
			by_type[e->type]++;
		/* a failed connect (type 4, only with report_failed) opens nothing */
		if (check && e->type >= TCPTRACER_CONNECT && e->type <= TCPTRACER_CLOSE)
			follow(e);
	}
	return 0;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

int main(int argc, char **argv)
{
	struct tcptracer_config cfg = { .targ_uid = (__u32)-1, .wakeup_data_bytes = 64 << 10 };
	struct tcptracer_bpf *skel;
	struct bpf_program *prog;
	struct ring_buffer *rb;
	unsigned long long printed = 0, lost = 0, map_full = 0, ends_unseen = 0, prog_misses = 0;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--comm") && i + 1 < argc)
			strncpy(want_comm, argv[++i], TASK_COMM_LEN - 1);
		else if (!strcmp(argv[i], "--check"))
			check = 1;
		else {
			fprintf(stderr, "usage: floor [--comm COMM] [--check]\n");
			return 2;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	skel = tcptracer_bpf__open();
	if (!skel)
		return die("opening BPF object", errno);
	skel->rodata->cfg = cfg;
	if ((err = bpf_map__set_max_entries(skel->maps.events, 8 << 20)))
		return die("sizing the ring buffer", err);
	if ((err = tcptracer_bpf__load(skel)))
		return die("loading BPF program", err);
	if ((err = tcptracer_bpf__attach(skel)))
		return die("attaching", err);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_sample, NULL, NULL);
	if (!rb)
		return die("creating ring buffer", errno);
	fprintf(stderr, "Tracing TCP established connections. Ctrl-C to end.\n");

	while (!stopping) {
		int n = ring_buffer__poll(rb, 100);

		if (n == 0)
			n = ring_buffer__consume(rb);
		if (n < 0 && n != -EINTR)
			return die("ring buffer poll", n);
		if (total != printed) {
			printf("count %llu\n", total);
			fflush(stdout);
			printed = total;
		}
	}
	tcptracer_bpf__detach(skel);
	ring_buffer__consume(rb);
	if (check)
		report_still_open();
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			prog_misses += info.recursion_misses;
	}

	{
		__u32 k = TCPTRACER_STAT_RINGBUF_LOST;

		bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &k, &lost);
		k = TCPTRACER_STAT_SOCK_MAP_FULL;
		bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &k, &map_full);
		k = TCPTRACER_STAT_END_UNSEEN;
		bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &k, &ends_unseen);
	}
	printf("{\"events\":%llu,\"matched\":%llu,\"connect\":%llu,\"accept\":%llu,\"close\":%llu,"
	       "\"ringbuf_lost\":%llu,\"sock_map_full\":%llu,\"ends_unseen\":%llu,\"prog_misses\":%llu,\"malformed\":%llu,"
	       "\"anomalies\":%llu}\n",
	       total, matched, by_type[1], by_type[2], by_type[3], lost, map_full, ends_unseen, prog_misses, malformed, anomalies);
	ring_buffer__free(rb);
	tcptracer_bpf__destroy(skel);
	return 0;
}
