/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ring.h - a BPF ring buffer consumer over one mapping of its data area
 * (ring.c), in place of libbpf's ring_buffer__new/consume/poll.
 *
 * libbpf maps the data area twice in a row so that a record which wraps past
 * its end reads as one piece; the process's RSS then counts every page of the
 * ring buffer twice (the kernel memory is the same). This consumer maps it once
 * and copies the rare record that wraps into a buffer of its own. Same
 * semantics as libbpf's: the callback's negative return stops the consume (the
 * record counts as consumed) and is returned; otherwise the number of records.
 */
#ifndef TCPTRACER_RING_H
#define TCPTRACER_RING_H

#include <stddef.h>

/* The largest record that may wrap and still be read whole; larger ones that wrap arrive with data == NULL. */
#define RING_BOUNCE_MAX 256

typedef int (*ring_sample_fn)(void *ctx, void *data, size_t size);

struct ring {
	int fd;
	size_t page;
	size_t size; /* data area, a power of two */
	unsigned long *consumer_pos; /* mapped read-write: one page */
	const unsigned long *producer_pos; /* mapped read-only with the data area after it */
	const unsigned char *data;
	ring_sample_fn cb;
	void *ctx;
	unsigned char bounce[RING_BOUNCE_MAX];
};

/* Maps the ring buffer map fd (data area of `size` bytes). 0 or a negative errno; on failure nothing is left mapped. */
int ring_open(struct ring *r, int map_fd, size_t size, ring_sample_fn cb, void *ctx);
/* Every committed record now, in order: their count, or the callback's negative return. */
int ring_consume(struct ring *r);
/* Waits up to timeout_ms for the probe's wake-up, then ring_consume; -EINTR when interrupted. */
int ring_poll(struct ring *r, int timeout_ms);
/* Unmaps. Idempotent; a zeroed struct is fine. */
void ring_close(struct ring *r);

#endif /* TCPTRACER_RING_H */
