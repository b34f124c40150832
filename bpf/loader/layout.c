// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * layout.c - struct tcptracer_event's members, offsets and sizes from the BTF
 * of the object the skeleton embeds (the probe keeps the type there through
 * its all-zero `event_layout` constant).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "layout.h"
#include "tracer.h"
#include "tcptracer.skel.h"

int event_layout_read(struct event_layout *out, char *why, size_t why_len)
{
	struct tcptracer_bpf *skel = tcptracer_bpf__open(); /* parses the ELF: no bpf() call */
	const struct btf_type *type;
	const struct btf_member *m;
	struct btf *btf;
	int id, err = 0;

	memset(out, 0, sizeof(*out));
	if (!skel) {
		err = -errno;
		snprintf(why, why_len, "cannot open the embedded BPF object");
		return err;
	}
	btf = bpf_object__btf(skel->obj);
	id = btf ? btf__find_by_name_kind(btf, "tcptracer_event", BTF_KIND_STRUCT) : -ENOENT;
	if (id < 0) {
		snprintf(why, why_len, "no struct tcptracer_event in the BPF object's BTF");
		err = -ENOENT;
		goto out;
	}
	type = btf__type_by_id(btf, id);
	if (btf_vlen(type) > LAYOUT_MAX_FIELDS || type->size != EVENT_SIZE) {
		snprintf(why, why_len, "struct tcptracer_event: %u fields, %u bytes in BTF, %zu in the loader",
			 btf_vlen(type), type->size, EVENT_SIZE);
		err = -EINVAL;
		goto out;
	}
	out->size = type->size;
	m = btf_members(type);
	for (int i = 0; i < btf_vlen(type); i++, m++) {
		__s64 size = btf__resolve_size(btf, m->type);
		const char *name = btf__name_by_offset(btf, m->name_off);

		if (size < 0 || !name || strlen(name) >= sizeof(out->fields[i].name) ||
		    btf_member_bitfield_size(type, i) || btf_member_bit_offset(type, i) % 8) {
			snprintf(why, why_len, "struct tcptracer_event: member %d is not a plain field", i);
			err = -EINVAL;
			goto out;
		}
		strcpy(out->fields[i].name, name);
		out->fields[i].offset = btf_member_bit_offset(type, i) / 8;
		out->fields[i].size = (__u32)size;
	}
	out->nfields = btf_vlen(type);
out:
	tcptracer_bpf__destroy(skel);
	return err;
}
