// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tracer.c - the probe's lifecycle, through its libbpf skeleton
 * (tcptracer.skel.h, generated from build/Release/tcptracer.bpf.o by bpftool
 * at build time): open, write cfg into .rodata, size the ring buffer, reuse
 * pinned filter maps, load, attach, map the counters, read the ring buffer on
 * a thread of its own (drain.c), detach, destroy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "drain.h"
#include "tracer.h"
#include "tcptracer.skel.h"

/* libbpf's warnings and errors, kept so a failure can say why in one line. */
static char libbpf_log[4096];
static size_t libbpf_log_len;
static bool libbpf_verbose;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t len;

	if (libbpf_verbose) {
		va_list copy;

		va_copy(copy, ap);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	if (level == LIBBPF_DEBUG || vsnprintf(line, sizeof(line), fmt, ap) <= 0)
		return 0;
	len = strlen(line);
	if (libbpf_log_len + len >= sizeof(libbpf_log))
		libbpf_log_len = 0;
	memcpy(libbpf_log + libbpf_log_len, line, len + 1);
	libbpf_log_len += len;
	return 0;
}

/* libbpf's summaries that follow the line saying why ("failed to load object ..."): skipped. */
static bool is_summary(const char *line)
{
	return !strncmp(line, "failed to load object", 21) || !strncmp(line, "failed to load BPF skeleton", 27);
}

const char *tracer_libbpf_last_line(void)
{
	static char out[512];
	const char *line = libbpf_log, *best = "";
	size_t best_len = 0;

	while (*line) {
		const char *nl = strchrnul(line, '\n'), *text = line;

		if (!strncmp(text, "libbpf: ", 8))
			text += 8;
		if (nl > text && !is_summary(text)) {
			best = text;
			best_len = (size_t)(nl - text);
		}
		line = *nl ? nl + 1 : nl;
	}
	snprintf(out, sizeof(out), "%.*s", (int)best_len, best);
	return out;
}

/* A signal (e.g. SIGPROF from node --cpu-prof) would interrupt the verifier (EAGAIN): none is let in. */
static int load_with_signals_blocked(struct tcptracer_bpf *skel)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = tcptracer_bpf__load(skel);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

/*
 * Each program into the skeleton's own link slot (one per program, so no
 * array to overflow), naming the one that fails: its section says which
 * tracepoint the kernel lacks.
 */
static int attach_all(struct tcptracer_bpf *skel, char *what, size_t what_len)
{
	const struct bpf_object_skeleton *s = skel->skeleton;

	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_program *prog = *s->progs[i].prog;
		struct bpf_link **link = s->progs[i].link;

		*link = bpf_program__attach(prog);
		if (!*link) {
			int err = -errno;

			snprintf(what, what_len, "attaching %s", bpf_program__section_name(prog));
			return err;
		}
	}
	return 0;
}

/* The counters (enum tcptracer_stat), mapped read-only: readable after the privilege drop. */
static int map_stats(struct tracer *t)
{
	void *m;

	t->stats_len = (size_t)sysconf(_SC_PAGESIZE);
	m = mmap(NULL, t->stats_len, PROT_READ, MAP_SHARED, bpf_map__fd(t->skel->maps.stats), 0);
	if (m == MAP_FAILED)
		return -errno;
	t->stats = m;
	return 0;
}

#define STEP(name) snprintf(what, what_len, "%s", name)

int tracer_open(const struct tracer_opts *opts, struct tracer **out, char *what, size_t what_len)
{
	struct tracer *t;
	int err;

	libbpf_verbose = opts->libbpf_debug;
	libbpf_log_len = 0;
	libbpf_log[0] = '\0';
	libbpf_set_print(on_libbpf_print);

	STEP("allocating tracer");
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->poll_ms = opts->poll_ms;
	t->paced = opts->paced;
	atomic_init(&t->stopping, false);
	atomic_init(&t->released, false);
	atomic_init(&t->credit, 0);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->granted, NULL);

	STEP("opening BPF object");
	t->skel = tcptracer_bpf__open();
	if (!t->skel) {
		err = -errno;
		goto fail;
	}
	t->skel->rodata->cfg = opts->cfg;

	STEP("preparing BPF maps");
	err = bpf_map__set_max_entries(t->skel->maps.events, opts->ringbuf_bytes);
	if (!err && opts->cgroup_map_fd >= 0)
		err = bpf_map__reuse_fd(t->skel->maps.cgroup_map, opts->cgroup_map_fd);
	if (!err && opts->mntns_map_fd >= 0)
		err = bpf_map__reuse_fd(t->skel->maps.mount_ns_set, opts->mntns_map_fd);
	if (err)
		goto fail;

	STEP("loading BPF program");
	err = load_with_signals_blocked(t->skel);
	if (err)
		goto fail;

	err = attach_all(t->skel, what, what_len);
	if (err)
		goto fail;

	STEP("mapping the stats map");
	err = map_stats(t);
	if (err)
		goto fail;

	STEP("creating ring buffer");
	err = ring_open(&t->rb, bpf_map__fd(t->skel->maps.events), bpf_map__max_entries(t->skel->maps.events),
			tracer_on_sample, t);
	if (err)
		goto fail;
	*out = t;
	return 0;

fail:
	tracer_destroy(t);
	return err < 0 ? err : -err;
}

int tracer_start(struct tracer *t, napi_threadsafe_function tsfn)
{
	int err;

	t->tsfn = tsfn;
	err = pthread_create(&t->thread, NULL, tracer_drain, t);
	if (!err)
		t->thread_started = true;
	return err;
}

void tracer_detach(struct tracer *t)
{
	/* Detach first, so the final drain sees every event already written. */
	tcptracer_bpf__detach(t->skel);
	atomic_store(&t->stopping, true);
	tracer_wake(t);
}

void tracer_join(struct tracer *t)
{
	if (!t->thread_started)
		return;
	atomic_store(&t->stopping, true);
	atomic_store(&t->released, true);
	tracer_wake(t);
	pthread_join(t->thread, NULL);
	t->thread_started = false;
}

void tracer_close(struct tracer *t)
{
	tracer_join(t);
	if (t->stats)
		munmap((void *)t->stats, t->stats_len);
	t->stats = NULL;
	ring_close(&t->rb);
	tcptracer_bpf__destroy(t->skel); /* detaches what is still attached; NULL is fine */
	t->skel = NULL;
	free(t->cur);
	t->cur = NULL;
}

void tracer_destroy(struct tracer *t)
{
	if (!t)
		return;
	tracer_close(t);
	pthread_cond_destroy(&t->granted);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
