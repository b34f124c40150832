/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * drain.h - the tracer the Node-API loader (tcptracer_loader.c) opens, and the
 * thread that drains its ring buffer into batches for JavaScript (drain.c).
 */
#ifndef TCPTRACER_DRAIN_H
#define TCPTRACER_DRAIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <node_api.h>

#include "../tcptracer.h"

#define EVENT_SIZE sizeof(struct tcptracer_event)
#define BATCH_MAX_EVENTS 1024
#define BATCH_QUEUE_MAX 16
#define BATCH_FULL (-ENOSPC)
#define CREDIT_SPENT (-EDQUOT) /* paced: the sample is consumed; nothing more may be read */
#define MAX_LINKS 8

struct batch {
	size_t n;
	unsigned char data[BATCH_MAX_EVENTS * EVENT_SIZE];
};

struct tracer {
	struct bpf_object *obj;
	struct bpf_link *links[MAX_LINKS];
	int nlinks;
	struct ring_buffer *rb;
	napi_threadsafe_function tsfn;
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping;
	int poll_ms;
	/* paced mode: records that may still be read; woken by grant/stop/release */
	bool paced;
	atomic_bool released;
	atomic_llong credit;
	pthread_mutex_t lock;
	pthread_cond_t granted;
	struct batch *cur;
	unsigned long long malformed;
	int drain_error;
	/* the stats map, mapped read-only: no bpf() call needed to read it */
	const volatile __u64 *stats;
	size_t stats_len;
};

/* ring_buffer__new's sample callback: copies the record into the current batch. */
int tracer_on_sample(void *ctx, void *data, size_t size);
/* The drain thread's body (pthread_create): until stop, then what is left; then onBatch(null). */
void *tracer_drain(void *arg);
/* Wakes the drain thread after a grant, a stop or a release. */
void tracer_wake(struct tracer *t);
/* Runs of the probe's programs the kernel skipped (recursion_misses), summed. */
__u64 tracer_probe_missed(const struct tracer *t);

#endif /* TCPTRACER_DRAIN_H */
