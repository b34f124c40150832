// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcptracer_loader.c - the Node-API addon that does what node-bpf cannot: open
 * the compiled probe, set its configuration, reuse pinned filter maps, apply
 * CO-RE relocations, load, attach, and drain the ring buffer.
 *
 * The ring buffer is drained on a thread of its own. Records are copied into a
 * batch and each batch reaches JavaScript in one call (a thread-safe function
 * with a bounded queue: when JavaScript falls behind, the drain thread waits and
 * the kernel counts what it cannot store). Nothing happens per event in
 * JavaScript's thread but decoding.
 *
 * Paced mode (opts.paced): the drain thread reads only as many records as
 * JavaScript has granted (grant(handle, n)), so the ring buffer itself is the
 * queue in front of a slow consumer (an OTLP export pipeline): records wait
 * there, compact and outside the JavaScript heap, and only a full ring buffer
 * loses any - counted by the probe. After stop() it goes on draining at the
 * granted pace until the ring buffer is empty, or until release(handle) asks
 * for everything left at once.
 *
 * JS API (see src/native.ts):
 *   open(opts, onBatch) -> handle     onBatch(Buffer) per batch, onBatch(null) at the end
 *   grant(handle, n)                  paced mode: n more records may be read
 *   stop(handle)                      detach; the drain thread finishes (non-blocking)
 *   release(handle)                   paced mode: hand over everything left, ignoring grants
 *   close(handle)                     free; after onBatch(null)
 *   counters(handle) -> [lost, full]  the probe's counters (enum tcptracer_stat), read from memory
 *   ensureTracefs() -> errno        mount tracefs if it is not mounted
 *   noNewPrivs() -> errno           prctl(PR_SET_NO_NEW_PRIVS) for this thread and those it starts
 *   clockOffsetNs() -> bigint         CLOCK_REALTIME - CLOCK_MONOTONIC
 *   eventLayout -> { size, fields: { name: [offset, size] } }
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include <node_api.h>

#include "../tcptracer.h"
#include "set_config.h"

#include "drain.h"

/* libbpf messages, kept so a failure can say why in one line. */
static char libbpf_log[4096];
static size_t libbpf_log_len;
static bool libbpf_verbose;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	if (libbpf_verbose) {
		va_list copy;

		va_copy(copy, ap);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	if (level == LIBBPF_DEBUG)
		return 0;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n > 0 && level != LIBBPF_DEBUG) {
		size_t len = strlen(line);

		if (libbpf_log_len + len >= sizeof(libbpf_log))
			libbpf_log_len = 0;
		memcpy(libbpf_log + libbpf_log_len, line, len + 1);
		libbpf_log_len += len;
	}
	return 0;
}

/* Throw an Error with code = errno name and message = what + strerror + libbpf's last word. */
static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[1024];
	const char *last = libbpf_log;
	char *nl;

	if (err < 0)
		err = -err;
	/* keep libbpf's last non-empty line only */
	while ((nl = strchr(last, '\n')) && nl[1])
		last = nl + 1;
	snprintf(msg, sizeof(msg), "%.200s: %.100s%s%.600s", what, strerror(err), *last ? " (libbpf: " : "",
		 *last ? last : "");
	nl = strrchr(msg, '\n');
	if (nl)
		*nl = '\0';
	if (*last)
		strncat(msg, ")", sizeof(msg) - strlen(msg) - 1);
	char code[32];
	snprintf(code, sizeof(code), "E%d", err);
	napi_throw_error(env, code, msg);
	return NULL;
}

/* Runs in JavaScript's thread: one call per batch, null at the end. */
static void call_js(napi_env env, napi_value cb, void *context, void *data)
{
	struct batch *b = data;
	napi_value arg, undefined;

	(void)context;
	if (!env) {
		free(b);
		return;
	}
	if (b) {
		void *copy;

		napi_create_buffer_copy(env, b->n * EVENT_SIZE, b->data, &copy, &arg);
		free(b);
	} else {
		napi_get_null(env, &arg);
	}
	napi_get_undefined(env, &undefined);
	napi_call_function(env, undefined, cb, 1, &arg, NULL);
}

static void tracer_free(struct tracer *t)
{
	if (t->stats)
		munmap((void *)t->stats, t->stats_len);
	t->stats = NULL;
	for (int i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	t->nlinks = 0;
	ring_buffer__free(t->rb);
	t->rb = NULL;
	bpf_object__close(t->obj);
	t->obj = NULL;
	free(t->cur);
	t->cur = NULL;
}

static void finalize_tracer(napi_env env, void *data, void *hint)
{
	struct tracer *t = data;

	(void)env;
	(void)hint;
	if (t->thread_started) {
		atomic_store(&t->stopping, true);
		atomic_store(&t->released, true);
		tracer_wake(t);
		pthread_join(t->thread, NULL);
	}
	tracer_free(t);
	pthread_cond_destroy(&t->granted);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- argument helpers ---- */

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out)
{
	bool has = false;
	napi_valuetype type;

	napi_has_named_property(env, obj, name, &has);
	if (!has)
		return false;
	napi_get_named_property(env, obj, name, out);
	napi_typeof(env, *out, &type);
	return type != napi_undefined && type != napi_null;
}

static int64_t get_int(napi_env env, napi_value obj, const char *name, int64_t dflt)
{
	napi_value v;
	int64_t r;

	if (!get_prop(env, obj, name, &v) || napi_get_value_int64(env, v, &r) != napi_ok)
		return dflt;
	return r;
}

static int reuse_pinned(struct bpf_object *obj, const char *map_name, int fd)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, map_name);

	return map ? bpf_map__reuse_fd(map, fd) : -ENOENT;
}

/* open(opts, onBatch): open, configure, load, attach, start draining. */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], v, handle, name;
	char path[4096];
	size_t len;
	struct tracer *t;
	struct tcptracer_config cfg = { .targ_uid = (__u32)-1 };
	struct bpf_map *events;
	struct bpf_program *prog;
	int err = 0, cgroup_fd, mntns_fd;
	int64_t ringbuf_bytes;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || !get_prop(env, argv[0], "objectPath", &v) ||
	    napi_get_value_string_utf8(env, v, path, sizeof(path), &len) != napi_ok) {
		napi_throw_type_error(env, NULL, "open(opts, onBatch): opts.objectPath is required");
		return NULL;
	}
	libbpf_verbose = get_int(env, argv[0], "libbpfDebug", 0) != 0;
	libbpf_log_len = 0;
	libbpf_log[0] = '\0';
	libbpf_set_print(on_libbpf_print);

	cfg.targ_tgid = (__u32)get_int(env, argv[0], "pid", 0);
	cfg.targ_uid = (__u32)get_int(env, argv[0], "uid", -1);
	cfg.targ_netns = (__u32)get_int(env, argv[0], "netns", 0);
	cfg.targ_family = (__u16)get_int(env, argv[0], "family", 0);
	cfg.wakeup_data_bytes = (__u64)get_int(env, argv[0], "wakeupBytes", 0);
	cfg.exclude_tgid = (__u32)get_int(env, argv[0], "excludePid", 0);
	cfg.report_failed = get_int(env, argv[0], "failed", 0) != 0;
	cgroup_fd = (int)get_int(env, argv[0], "cgroupMapFd", -1);
	mntns_fd = (int)get_int(env, argv[0], "mntnsMapFd", -1);
	cfg.filter_cgroup = cgroup_fd >= 0;
	cfg.filter_mntns = mntns_fd >= 0;
	ringbuf_bytes = get_int(env, argv[0], "ringbufBytes", 8 << 20);

	t = calloc(1, sizeof(*t));
	if (!t)
		return throw_errno(env, "allocating tracer", ENOMEM);
	t->poll_ms = (int)get_int(env, argv[0], "pollMs", 100);
	t->paced = get_int(env, argv[0], "paced", 0) != 0;
	atomic_init(&t->stopping, false);
	atomic_init(&t->released, false);
	atomic_init(&t->credit, 0);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->granted, NULL);

	t->obj = bpf_object__open_file(path, NULL);
	if (!t->obj) {
		err = errno;
		free(t);
		return throw_errno(env, "opening BPF object", err);
	}
	err = tcptracer_set_config(t->obj, &cfg);
	if (err)
		goto fail_msg;
	events = bpf_object__find_map_by_name(t->obj, "events");
	if (!events || (err = bpf_map__set_max_entries(events, (__u32)ringbuf_bytes)))
		goto fail_setup;
	if (cgroup_fd >= 0 && (err = reuse_pinned(t->obj, "cgroup_map", cgroup_fd)))
		goto fail_setup;
	if (mntns_fd >= 0 && (err = reuse_pinned(t->obj, "mount_ns_set", mntns_fd)))
		goto fail_setup;

	{
		/* A signal (e.g. SIGPROF from node --cpu-prof) interrupts the verifier: EAGAIN. */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		err = bpf_object__load(t->obj);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (err) {
		tracer_free(t);
		free(t);
		return throw_errno(env, "loading BPF program", err);
	}
	bpf_object__for_each_program(prog, t->obj) {
		struct bpf_link *link = bpf_program__attach(prog);

		if (!link) {
			char what[128];

			err = errno;
			snprintf(what, sizeof(what), "attaching %s", bpf_program__section_name(prog));
			tracer_free(t);
			free(t);
			return throw_errno(env, what, err);
		}
		t->links[t->nlinks++] = link;
	}
	{
		struct bpf_map *stats = bpf_object__find_map_by_name(t->obj, "stats");
		void *m;

		t->stats_len = (size_t)sysconf(_SC_PAGESIZE);
		m = stats ? mmap(NULL, t->stats_len, PROT_READ, MAP_SHARED, bpf_map__fd(stats), 0) : MAP_FAILED;
		if (m == MAP_FAILED) {
			err = stats ? errno : ENOENT;
			tracer_free(t);
			free(t);
			return throw_errno(env, "mapping the stats map", err);
		}
		t->stats = m;
	}
	t->rb = ring_buffer__new(bpf_map__fd(events), tracer_on_sample, t, NULL);
	if (!t->rb) {
		err = errno;
		tracer_free(t);
		free(t);
		return throw_errno(env, "creating ring buffer", err);
	}

	napi_create_string_utf8(env, "tcptracer-drain", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[1], NULL, name, BATCH_QUEUE_MAX, 1, NULL, NULL,
					    NULL, call_js, &t->tsfn) != napi_ok) {
		tracer_free(t);
		free(t);
		napi_throw_error(env, NULL, "cannot create thread-safe function");
		return NULL;
	}
	err = pthread_create(&t->thread, NULL, tracer_drain, t);
	if (err) {
		napi_release_threadsafe_function(t->tsfn, napi_tsfn_abort);
		tracer_free(t);
		free(t);
		return throw_errno(env, "starting drain thread", err);
	}
	t->thread_started = true;
	napi_create_external(env, t, finalize_tracer, NULL, &handle);
	return handle;

fail_msg:
	tracer_free(t);
	free(t);
	return throw_errno(env, "configuring BPF object (cfg in .rodata)", err);
fail_setup:
	tracer_free(t);
	free(t);
	return throw_errno(env, "preparing BPF maps", err ? err : ENOENT);
}

static struct tracer *get_tracer(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	void *t = NULL;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 1 || napi_get_value_external(env, argv[0], &t) != napi_ok || !t) {
		napi_throw_type_error(env, NULL, "expected a tracer handle");
		return NULL;
	}
	return t;
}

static napi_value js_stop(napi_env env, napi_callback_info info)
{
	struct tracer *t = get_tracer(env, info);

	if (t) {
		/* Detach first, so the final drain sees every event already written. */
		for (int i = 0; i < t->nlinks; i++)
			bpf_link__destroy(t->links[i]);
		t->nlinks = 0;
		atomic_store(&t->stopping, true);
		tracer_wake(t);
	}
	return NULL;
}

/* grant(handle, n): paced mode, n more records may be read. */
static napi_value js_grant(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	int64_t n = 0;
	void *p = NULL;
	struct tracer *t;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < 2 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p ||
	    napi_get_value_int64(env, argv[1], &n) != napi_ok) {
		napi_throw_type_error(env, NULL, "grant(handle, n)");
		return NULL;
	}
	t = p;
	/*
	 * Wake the drain thread only if it may be waiting, i.e. the credit was
	 * spent: it waits (under t->lock) only after seeing credit <= 0, and an
	 * add that finds credit > 0 comes before any such check in the credit's
	 * modification order. A wake per grant cost a futex call on every export
	 * (5% of the main thread under load).
	 */
	if (n > 0 && atomic_fetch_add(&t->credit, n) <= 0)
		tracer_wake(t);
	return NULL;
}

/* release(handle): paced mode ends; everything left is handed over as fast as it can be read. */
static napi_value js_release(napi_env env, napi_callback_info info)
{
	struct tracer *t = get_tracer(env, info);

	if (t) {
		atomic_store(&t->released, true);
		tracer_wake(t);
	}
	return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	struct tracer *t = get_tracer(env, info);

	if (t && t->thread_started) {
		atomic_store(&t->stopping, true);
		atomic_store(&t->released, true);
		tracer_wake(t);
		pthread_join(t->thread, NULL);
		t->thread_started = false;
		tracer_free(t);
	}
	return NULL;
}

static napi_value js_counters(napi_env env, napi_callback_info info)
{
	struct tracer *t = get_tracer(env, info);
	napi_value r, v;

	if (!t || !t->stats)
		return NULL;
	napi_create_array_with_length(env, TCPTRACER_STAT_MAX, &r);
	for (uint32_t i = 0; i < TCPTRACER_STAT_MAX; i++) {
		napi_create_int64(env, (int64_t)t->stats[i], &v);
		napi_set_element(env, r, i, v);
	}
	return r;
}

static napi_value js_drain_status(napi_env env, napi_callback_info info)
{
	struct tracer *t = get_tracer(env, info);
	napi_value r, v;

	if (!t)
		return NULL;
	napi_create_object(env, &r);
	napi_create_int64(env, (int64_t)t->malformed, &v);
	napi_set_named_property(env, r, "malformed", v);
	napi_create_int32(env, t->drain_error, &v);
	napi_set_named_property(env, r, "error", v);
	napi_create_int64(env, (int64_t)tracer_probe_missed(t), &v);
	napi_set_named_property(env, r, "probeMissed", v);
	return r;
}

static napi_value js_clock_offset_ns(napi_env env, napi_callback_info info)
{
	struct timespec r1, m, r2;
	int64_t best_gap = INT64_MAX, offset = 0;
	napi_value out;

	(void)info;
	/* Bracket a monotonic reading between two realtime ones; keep the tightest. */
	for (int i = 0; i < 5; i++) {
		clock_gettime(CLOCK_REALTIME, &r1);
		clock_gettime(CLOCK_MONOTONIC, &m);
		clock_gettime(CLOCK_REALTIME, &r2);
		int64_t a = r1.tv_sec * 1000000000LL + r1.tv_nsec;
		int64_t b = r2.tv_sec * 1000000000LL + r2.tv_nsec;
		int64_t mono = m.tv_sec * 1000000000LL + m.tv_nsec;

		if (b - a < best_gap) {
			best_gap = b - a;
			offset = a + (b - a) / 2 - mono;
		}
	}
	napi_create_bigint_int64(env, offset, &out);
	return out;
}

/*
 * Classic tracepoints are attached through their ids under tracefs. Mount it
 * where it is expected when nobody did (containers, minimal hosts).
 * Returns 0, or the errno of the failed mount.
 */
static napi_value js_ensure_tracefs(napi_env env, napi_callback_info info)
{
	static const char *const dirs[] = { "/sys/kernel/tracing/events",
					    "/sys/kernel/debug/tracing/events" };
	napi_value r;
	int err = 0;

	(void)info;
	if (access(dirs[0], F_OK) && access(dirs[1], F_OK) &&
	    mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL))
		err = errno;
	napi_create_int32(env, err, &r);
	return r;
}

/*
 * no_new_privs for the calling thread and every thread it creates afterwards
 * (the drain thread, libuv's pool): no execve can regain privileges. A
 * thread attribute, so it is set before the probe is opened.
 */
static napi_value js_no_new_privs(napi_env env, napi_callback_info info)
{
	napi_value r;

	(void)info;
	napi_create_int32(env, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ? errno : 0, &r);
	return r;
}

static void set_field(napi_env env, napi_value fields, const char *name, size_t off, size_t size)
{
	napi_value arr, a, b;

	napi_create_array_with_length(env, 2, &arr);
	napi_create_uint32(env, (uint32_t)off, &a);
	napi_create_uint32(env, (uint32_t)size, &b);
	napi_set_element(env, arr, 0, a);
	napi_set_element(env, arr, 1, b);
	napi_set_named_property(env, fields, name, arr);
}

#define FIELD(f) set_field(env, fields, #f, offsetof(struct tcptracer_event, f), \
			   sizeof(((struct tcptracer_event *)0)->f))

static napi_value event_layout(napi_env env)
{
	napi_value layout, fields, v;

	napi_create_object(env, &layout);
	napi_create_object(env, &fields);
	FIELD(ts_ns);
	FIELD(cgroup_id);
	FIELD(duration_ns);
	FIELD(bytes_acked);
	FIELD(bytes_received);
	FIELD(pid);
	FIELD(tid);
	FIELD(uid);
	FIELD(euid);
	FIELD(netns);
	FIELD(saddr);
	FIELD(daddr);
	FIELD(sport);
	FIELD(dport);
	FIELD(family);
	FIELD(type);
	FIELD(role);
	FIELD(comm);
	FIELD(local_isn);
	FIELD(peer_isn);
	FIELD(error);
	FIELD(end);
	FIELD(__reserved);
	napi_create_uint32(env, EVENT_SIZE, &v);
	napi_set_named_property(env, layout, "size", v);
	napi_set_named_property(env, layout, "fields", fields);
	return layout;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
		{ "stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL },
		{ "grant", NULL, js_grant, NULL, NULL, NULL, napi_default, NULL },
		{ "release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
		{ "counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL },
		{ "drainStatus", NULL, js_drain_status, NULL, NULL, NULL, napi_default, NULL },
		{ "ensureTracefs", NULL, js_ensure_tracefs, NULL, NULL, NULL, napi_default, NULL },
		{ "noNewPrivs", NULL, js_no_new_privs, NULL, NULL, NULL, napi_default, NULL },
		{ "clockOffsetNs", NULL, js_clock_offset_ns, NULL, NULL, NULL, napi_default, NULL },
		{ "eventLayout", NULL, NULL, NULL, NULL, event_layout(env), napi_enumerable, NULL },
	};

	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
