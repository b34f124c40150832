// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ring.c - the ring buffer read over one mapping of its data area (ring.h).
 *
 * The map's pages (the kernel's layout, include/linux/bpf ringbuf): the
 * consumer position's page (the only one user space may write), the producer
 * position's page, then the data area. Each record starts at an 8-aligned
 * position with an 8-byte header: its length with BUSY (not committed yet) and
 * DISCARD bits, and the page offset the kernel uses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "ring.h"

int ring_open(struct ring *r, int map_fd, size_t size, ring_sample_fn cb, void *ctx)
{
	void *m;

	memset(r, 0, sizeof(*r));
	r->fd = map_fd;
	r->page = (size_t)sysconf(_SC_PAGESIZE);
	r->cb = cb;
	r->ctx = ctx;
	if (!size || (size & (size - 1)))
		return -EINVAL;
	r->size = size;
	m = mmap(NULL, r->page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	r->consumer_pos = m;
	/* the producer's page and the data area once (libbpf maps the data twice) */
	m = mmap(NULL, r->page + size, PROT_READ, MAP_SHARED, map_fd, (off_t)r->page);
	if (m == MAP_FAILED) {
		int err = -errno;

		ring_close(r);
		return err;
	}
	r->producer_pos = m;
	r->data = (const unsigned char *)m + r->page;
	return 0;
}

/* The record's bytes at data offset `off` (already masked), in one piece: in place, or copied when it wraps. */
static void *record_at(struct ring *r, size_t off, size_t len)
{
	size_t first;

	if (off + len <= r->size)
		return (void *)(r->data + off);
	if (len > sizeof(r->bounce))
		return NULL;
	first = r->size - off;
	memcpy(r->bounce, r->data + off, first);
	memcpy(r->bounce + first, r->data, len - first);
	return r->bounce;
}

int ring_consume(struct ring *r)
{
	unsigned long cons, prod;
	size_t mask = r->size - 1;
	long long cnt = 0;
	bool more;

	cons = __atomic_load_n(r->consumer_pos, __ATOMIC_ACQUIRE);
	do {
		more = false;
		prod = __atomic_load_n(r->producer_pos, __ATOMIC_ACQUIRE);
		while (cons < prod) {
			/* 8-aligned in a power-of-two area: a header never wraps */
			const __u32 *hdr = (const __u32 *)(r->data + (cons & mask));
			__u32 len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
			__u32 size = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
			size_t off = (cons + BPF_RINGBUF_HDR_SZ) & mask;

			if (len & BPF_RINGBUF_BUSY_BIT)
				goto done; /* not committed yet: the next call reads it */
			more = true;
			cons += (BPF_RINGBUF_HDR_SZ + size + 7) & ~7UL;
			if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
				int err = r->cb(r->ctx, record_at(r, off, size), size);

				if (err < 0) {
					__atomic_store_n(r->consumer_pos, cons, __ATOMIC_RELEASE);
					return err;
				}
				cnt++;
			}
			__atomic_store_n(r->consumer_pos, cons, __ATOMIC_RELEASE);
		}
	} while (more);
done:
	return cnt > 0x7fffffff ? 0x7fffffff : (int)cnt;
}

int ring_poll(struct ring *r, int timeout_ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) < 0)
		return -errno;
	return ring_consume(r);
}

void ring_close(struct ring *r)
{
	if (r->producer_pos)
		munmap((void *)r->producer_pos, r->page + r->size);
	if (r->consumer_pos)
		munmap(r->consumer_pos, r->page);
	r->producer_pos = NULL;
	r->consumer_pos = NULL;
	r->data = NULL;
}
