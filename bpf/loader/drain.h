/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * drain.h - the thread that drains a tracer's ring buffer into batches for
 * JavaScript (drain.c), and the kernel's count of probe runs it skipped.
 */
#ifndef TCPTRACER_DRAIN_H
#define TCPTRACER_DRAIN_H

#include "tracer.h"

/* The ring buffer's sample callback (ring.h): copies the record into the current batch. */
int tracer_on_sample(void *ctx, void *data, size_t size);
/* The drain thread's body (pthread_create): until stop, then what is left; then onBatch(null). */
void *tracer_drain(void *arg);
/* Wakes the drain thread after a grant, a stop or a release. */
void tracer_wake(struct tracer *t);
/* Runs of the probe's programs the kernel skipped (recursion_misses), summed. */
__u64 tracer_probe_missed(const struct tracer *t);

#endif /* TCPTRACER_DRAIN_H */
