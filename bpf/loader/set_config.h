/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * set_config.h - write struct tcptracer_config into an opened (not yet loaded)
 * tcptracer.bpf.o: the probe's `const volatile struct tcptracer_config cfg`
 * lives in .rodata, at the offset its BTF DATASEC records. Shared by the
 * Node-API loader and bench/floor.c, so both run the probe with the same settings.
 */
#ifndef TCPTRACER_SET_CONFIG_H
#define TCPTRACER_SET_CONFIG_H

#include <errno.h>
#include <string.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "../tcptracer.h"

/* 0, -ENOENT (no cfg in .rodata) or -EINVAL (cfg outside the section). */
static inline int tcptracer_set_config(struct bpf_object *obj, const struct tcptracer_config *cfg)
{
	struct bpf_map *rodata = bpf_object__find_map_by_name(obj, ".rodata");
	struct btf *btf = bpf_object__btf(obj);
	int id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	size_t size;
	char *init;

	if (!rodata || id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), "cfg"))
			continue;
		/* writable until load; older libbpf declares it const */
		init = (char *)bpf_map__initial_value(rodata, &size);
		if (!init || vs->offset + sizeof(*cfg) > size)
			return -EINVAL;
		memcpy(init + vs->offset, cfg, sizeof(*cfg));
		return 0;
	}
	return -ENOENT;
}

#endif /* TCPTRACER_SET_CONFIG_H */
