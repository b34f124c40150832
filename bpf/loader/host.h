/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * host.h - what the tracer sets up on the host around the probe (host.c):
 * tracefs, no_new_privs, and the clock offset events are stamped with.
 */
#ifndef TCPTRACER_HOST_H
#define TCPTRACER_HOST_H

#include <stdint.h>

/* Mounts tracefs at /sys/kernel/tracing unless tracepoint ids are readable already. 0 or an errno. */
int host_ensure_tracefs(void);
/* prctl(PR_SET_NO_NEW_PRIVS) for the calling thread and the threads it starts later. 0 or an errno. */
int host_no_new_privs(void);
/* CLOCK_REALTIME - CLOCK_MONOTONIC, ns: bpf_ktime_get_ns() + this is wall-clock time. */
int64_t host_clock_offset_ns(void);

#endif /* TCPTRACER_HOST_H */
