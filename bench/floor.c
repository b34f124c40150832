// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor - the cheapest possible consumer of the tracer's probe, for bench/run.ts.
 *
 *   floor OBJECT [--comm COMM]
 *
 * Loads the SAME compiled object the CLI loads (build/Release/tcptracer.bpf.o)
 * with the same settings as the Node-API loader (bpf/loader/tcptracer_loader.c)
 * uses by default: `cfg` written into .rodata via BTF (all filters off,
 * wakeup_data_bytes 64 KiB), ring buffer 8 MiB, 100 ms poll with a consume when
 * the poll times out. Each record is only counted (by type, and whether its comm
 * is COMM). This is what draining the kernel costs when user space does nothing.
 *
 * Prints "Tracing TCP established connections. Ctrl-C to end." on stderr once
 * attached and "count N" on stdout whenever the total changed (at most every
 * 100 ms). On SIGINT/SIGTERM: detach, drain what is left, read the kernel's
 * counters from the "stats" map and print one JSON line on stdout.
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
#include "loader/set_config.h"

#define MAX_LINKS 8

static volatile sig_atomic_t stopping;
static unsigned long long total, matched, malformed, by_type[4];
static char want_comm[TASK_COMM_LEN];

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
	if (e->type < 4)
		by_type[e->type]++;
	if (!want_comm[0] || !strncmp(e->comm, want_comm, TASK_COMM_LEN))
		matched++;
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
	struct bpf_link *links[MAX_LINKS];
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *events, *stats;
	struct ring_buffer *rb;
	unsigned long long printed = 0, lost = 0, map_full = 0;
	int nlinks = 0, err;

	if (argc < 2) {
		fprintf(stderr, "usage: floor OBJECT [--comm COMM]\n");
		return 2;
	}
	if (argc >= 4 && !strcmp(argv[2], "--comm"))
		strncpy(want_comm, argv[3], TASK_COMM_LEN - 1);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return die("opening BPF object", errno);
	if ((err = tcptracer_set_config(obj, &cfg)))
		return die("writing cfg into .rodata", err);
	events = bpf_object__find_map_by_name(obj, "events");
	if (!events || (err = bpf_map__set_max_entries(events, 8 << 20)))
		return die("sizing the ring buffer", events ? err : ENOENT);
	if ((err = bpf_object__load(obj)))
		return die("loading BPF program", err);
	bpf_object__for_each_program(prog, obj) {
		if (nlinks == MAX_LINKS)
			return die("too many programs", E2BIG);
		links[nlinks] = bpf_program__attach(prog);
		if (!links[nlinks])
			return die(bpf_program__section_name(prog), errno);
		nlinks++;
	}
	rb = ring_buffer__new(bpf_map__fd(events), on_sample, NULL, NULL);
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
	for (int i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	ring_buffer__consume(rb);

	stats = bpf_object__find_map_by_name(obj, "stats");
	if (stats) {
		__u32 k = TCPTRACER_STAT_RINGBUF_LOST;

		bpf_map_lookup_elem(bpf_map__fd(stats), &k, &lost);
		k = TCPTRACER_STAT_SOCK_MAP_FULL;
		bpf_map_lookup_elem(bpf_map__fd(stats), &k, &map_full);
	}
	printf("{\"events\":%llu,\"matched\":%llu,\"connect\":%llu,\"accept\":%llu,\"close\":%llu,"
	       "\"ringbuf_lost\":%llu,\"sock_map_full\":%llu,\"malformed\":%llu}\n",
	       total, matched, by_type[1], by_type[2], by_type[3], lost, map_full, malformed);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
