/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tracer.h - one loaded, attached probe (tracer.c) and what its drain thread
 * (drain.c) shares with the Node-API surface (addon.c).
 *
 * Lifecycle: tracer_open (open the skeleton, write cfg into its .rodata, size
 * the ring buffer, reuse pinned filter maps, load, attach, map the counters,
 * create the ring buffer reader) -> tracer_start (the drain thread) ->
 * tracer_detach (stop) -> tracer_close (after the last batch) -> tracer_destroy
 * (the handle's finalizer). tracer_destroy frees whatever exists, so every
 * failure path is one call.
 */
#ifndef TCPTRACER_TRACER_H
#define TCPTRACER_TRACER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <node_api.h>

#include "../tcptracer.h"
#include "ring.h"

#define EVENT_SIZE sizeof(struct tcptracer_event)
#define BATCH_MAX_EVENTS 1024
#define BATCH_QUEUE_MAX 16

struct batch {
	size_t n;
	unsigned char data[BATCH_MAX_EVENTS * EVENT_SIZE];
};

/* What open(opts) asks for; -1 fds: no pinned map. */
struct tracer_opts {
	struct tcptracer_config cfg;
	int cgroup_map_fd;
	int mntns_map_fd;
	__u32 ringbuf_bytes;
	int poll_ms;
	bool paced;
	bool libbpf_debug;
};

struct tracer {
	struct tcptracer_bpf *skel; /* the object, its maps, programs and links */
	struct ring rb; /* the ring buffer, its data area mapped once (ring.c) */
	napi_threadsafe_function tsfn; /* onBatch; owned by the drain thread once started */
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

/*
 * Opens, configures, loads and attaches the probe. 0 and *out, or a negative
 * errno with what[] naming the step that failed ("attaching tracepoint/...").
 */
int tracer_open(const struct tracer_opts *opts, struct tracer **out, char *what, size_t what_len);
/* Starts the drain thread, which hands batches to tsfn and releases it at the end. 0 or an errno. */
int tracer_start(struct tracer *t, napi_threadsafe_function tsfn);
/* Detaches every program: nothing more is written; the drain thread reads what is left. */
void tracer_detach(struct tracer *t);
/* Ends the drain thread (everything left handed over) and waits for it. */
void tracer_join(struct tracer *t);
/* Joins the drain thread if running and frees everything that exists but t itself. Idempotent. */
void tracer_close(struct tracer *t);
/* tracer_close, then t. NULL is fine. */
void tracer_destroy(struct tracer *t);

/* libbpf's last warning or error line but its summaries ("" if none), for error messages. */
const char *tracer_libbpf_last_line(void);

#endif /* TCPTRACER_TRACER_H */
