// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * drain.c - the drain thread: ring buffer records into batches, each handed
 * to JavaScript in one call through a thread-safe function with a bounded
 * queue, paced by JavaScript's grants when asked (see addon.c);
 * and the kernel's count of probe runs it skipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "drain.h"
#include "tcptracer.skel.h"

#define BATCH_FULL (-ENOSPC)
#define CREDIT_SPENT (-EDQUOT) /* paced: the sample is consumed; nothing more may be read */

int tracer_on_sample(void *ctx, void *data, size_t size)
{
	struct tracer *t = ctx;
	bool spent;

	if (size != EVENT_SIZE || !data) {
		t->malformed++;
		return 0;
	}
	if (!t->cur) {
		t->cur = malloc(sizeof(*t->cur));
		if (!t->cur)
			return -ENOMEM;
		t->cur->n = 0;
	}
	memcpy(t->cur->data + t->cur->n * EVENT_SIZE, data, EVENT_SIZE);
	spent = t->paced && !atomic_load(&t->released) && atomic_fetch_sub(&t->credit, 1) <= 1;
	if (++t->cur->n == BATCH_MAX_EVENTS)
		return BATCH_FULL; /* the sample is consumed; hand the batch over first */
	return spent ? CREDIT_SPENT : 0;
}

static void hand_over(struct tracer *t)
{
	struct batch *b = t->cur;

	if (!b || !b->n)
		return;
	t->cur = NULL;
	if (napi_call_threadsafe_function(t->tsfn, b, napi_tsfn_blocking) != napi_ok)
		free(b);
}

/*
 * The ring buffer's poll is level-triggered: under steady load there is always
 * something to read, and a reader that goes straight back to it hands over a
 * stream of tiny batches. So after a small batch the thread naps briefly and
 * lets records accumulate; when the ring buffer is empty it sleeps until the
 * probe's wake-up threshold is crossed or the poll timeout expires.
 */
#define SMALL_BATCH 64
#define NAP_US 2000

/* Unpaced, released, or granted records left: the ring buffer may be read. */
static bool may_read(struct tracer *t)
{
	return !t->paced || atomic_load(&t->released) || atomic_load(&t->credit) > 0;
}

/* Paced mode with nothing granted: wait for a grant or release, at most poll_ms. */
static void wait_for_credit(struct tracer *t)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)t->poll_ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&t->lock);
	while (!may_read(t))
		if (pthread_cond_timedwait(&t->granted, &t->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&t->lock);
}

void tracer_wake(struct tracer *t)
{
	pthread_mutex_lock(&t->lock);
	pthread_cond_signal(&t->granted);
	pthread_mutex_unlock(&t->lock);
}

static bool drain_failed(struct tracer *t, int n)
{
	if (n >= 0 || n == -EINTR || n == BATCH_FULL || n == CREDIT_SPENT)
		return false;
	t->drain_error = -n;
	return true;
}

void *tracer_drain(void *arg)
{
	struct tracer *t = arg;
	int n;

	for (;;) {
		bool stopping = atomic_load(&t->stopping);

		if (!may_read(t)) {
			/* paced and nothing granted: the records wait in the ring buffer */
			wait_for_credit(t);
			continue;
		}
		n = ring_consume(&t->rb);
		if (drain_failed(t, n))
			break;
		hand_over(t);
		if (n == BATCH_FULL || n == CREDIT_SPENT)
			continue;
		if (stopping)
			break; /* detached, and everything written is read */
		if (n >= SMALL_BATCH)
			continue;
		if (n > 0) {
			usleep(NAP_US);
			continue;
		}
		n = ring_poll(&t->rb, t->poll_ms);
		if (drain_failed(t, n))
			break;
		hand_over(t);
	}
	/* Whatever is still in the ring buffer (after a drain error): all of it. */
	atomic_store(&t->released, true);
	do {
		n = ring_consume(&t->rb);
		hand_over(t);
	} while (n == BATCH_FULL);
	napi_call_threadsafe_function(t->tsfn, NULL, napi_tsfn_blocking);
	napi_release_threadsafe_function(t->tsfn, napi_tsfn_release);
	return NULL;
}

/*
 * A program's recursion_misses, from /proc/self/fdinfo (readable after the
 * privilege drop, unlike bpf_prog_info on kernels before 6.5); from
 * bpf_prog_info when fdinfo cannot be read (no procfs); 0 before Linux 5.12,
 * which counted no misses.
 */
static __u64 prog_recursion_misses(int fd)
{
	char path[64], line[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "recursion_misses: %llu", &v) == 1)
				break;
		fclose(f);
		return v;
	}
	{
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(pi);

		return bpf_obj_get_info_by_fd(fd, &pi, &len) ? 0 : pi.recursion_misses;
	}
}

/*
 * Runs of the probe's programs the kernel skipped: a tracepoint that fires in
 * an interrupt landing in the middle of a BPF program on that CPU does not run
 * the program (for tp_btf: if it is the same program; for classic
 * tracepoints: any tracing program); bpf_prog_info counts those as
 * recursion_misses. Any of them may be a missing event.
 */
__u64 tracer_probe_missed(const struct tracer *t)
{
	struct bpf_program *prog;
	__u64 n = 0;

	if (!t->skel)
		return 0;
	bpf_object__for_each_program(prog, t->skel->obj) {
		int fd = bpf_program__fd(prog);

		if (fd >= 0)
			n += prog_recursion_misses(fd);
	}
	return n;
}
