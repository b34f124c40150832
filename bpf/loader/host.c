// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * host.c - host setup around the probe: tracefs, no_new_privs, clock offset.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "host.h"

/*
 * Classic tracepoints are attached through their ids under tracefs. Mount it
 * where it is expected when nobody did (containers, minimal hosts).
 */
int host_ensure_tracefs(void)
{
	if (!access("/sys/kernel/tracing/events", F_OK) || !access("/sys/kernel/debug/tracing/events", F_OK))
		return 0;
	return mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) ? errno : 0;
}

/*
 * no_new_privs for the calling thread and every thread it creates afterwards
 * (the drain thread, libuv's pool): no execve can regain privileges. A
 * thread attribute, so it is set before the probe is opened.
 */
int host_no_new_privs(void)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ? errno : 0;
}

static int64_t ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* Brackets a monotonic reading between two realtime ones; keeps the tightest of 5. */
int64_t host_clock_offset_ns(void)
{
	int64_t best_gap = INT64_MAX, offset = 0;

	for (int i = 0; i < 5; i++) {
		struct timespec r1, m, r2;

		clock_gettime(CLOCK_REALTIME, &r1);
		clock_gettime(CLOCK_MONOTONIC, &m);
		clock_gettime(CLOCK_REALTIME, &r2);
		if (ns(&r2) - ns(&r1) < best_gap) {
			best_gap = ns(&r2) - ns(&r1);
			offset = ns(&r1) + best_gap / 2 - ns(&m);
		}
	}
	return offset;
}
