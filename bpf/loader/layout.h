/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * layout.h - struct tcptracer_event as the BPF compiler laid it out, read from
 * the BTF of the object the skeleton embeds (layout.c): what eventLayout
 * exports, so test/unit-layout.test.ts compares src/event.ts against the
 * probe's own idea of the record rather than a hand-kept list.
 */
#ifndef TCPTRACER_LAYOUT_H
#define TCPTRACER_LAYOUT_H

#include <stddef.h>
#include <linux/types.h>

#define LAYOUT_MAX_FIELDS 64

struct event_field {
	char name[32];
	__u32 offset;
	__u32 size;
};

struct event_layout {
	__u32 size;
	int nfields;
	struct event_field fields[LAYOUT_MAX_FIELDS];
};

/* 0, or a negative errno with why[] saying what is wrong with the object's BTF. */
int event_layout_read(struct event_layout *out, char *why, size_t why_len);

#endif /* TCPTRACER_LAYOUT_H */
