// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * addon.c - the Node-API surface of the loader: what node-bpf cannot do
 * (open the probe embedded in tcptracer.skel.h, configure it, reuse pinned
 * filter maps, load, attach: tracer.c), draining its ring buffer on a thread
 * of its own (drain.c), and host setup (host.c).
 *
 * Records are copied into batches and each batch reaches JavaScript in one
 * call (a thread-safe function with a bounded queue: when JavaScript falls
 * behind, the drain thread waits and the kernel counts what it cannot store).
 * Nothing happens per event in JavaScript's thread but decoding.
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
 *   drainStatus(handle)               { malformed, error, probeMissed }
 *   ensureTracefs() -> errno          mount tracefs if it is not mounted
 *   noNewPrivs() -> errno             prctl(PR_SET_NO_NEW_PRIVS) for this thread and those it starts
 *   clockOffsetNs() -> bigint         CLOCK_REALTIME - CLOCK_MONOTONIC
 *   eventLayout -> { size, fields: { name: [offset, size] } }   from the object's BTF
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "drain.h"
#include "host.h"
#include "layout.h"
#include "tracer.h"

/* Throws an Error with code "E<errno>" and message "what: strerror (libbpf: its last line)". */
static napi_value throw_errno(napi_env env, const char *what, int err)
{
	const char *last = tracer_libbpf_last_line();
	char msg[1024], code[32];

	if (err < 0)
		err = -err;
	if (*last)
		snprintf(msg, sizeof(msg), "%.200s: %.100s (libbpf: %.600s)", what, strerror(err), last);
	else
		snprintf(msg, sizeof(msg), "%.200s: %.100s", what, strerror(err));
	snprintf(code, sizeof(code), "E%d", err);
	napi_throw_error(env, code, msg);
	return NULL;
}

/* Runs in JavaScript's thread: one call per batch, null at the end. */
static void call_js(napi_env env, napi_value cb, void *context, void *data)
{
	struct batch *b = data;
	napi_value arg, undefined;

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

static void finalize_tracer(napi_env env, void *data, void *hint)
{
	tracer_destroy(data);
}

/* ---- arguments ---- */

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

static struct tracer_opts read_opts(napi_env env, napi_value o)
{
	struct tracer_opts opts = {
		.cfg = {
			.targ_tgid = (__u32)get_int(env, o, "pid", 0),
			.targ_uid = (__u32)get_int(env, o, "uid", -1),
			.targ_netns = (__u32)get_int(env, o, "netns", 0),
			.targ_family = (__u16)get_int(env, o, "family", 0),
			.wakeup_data_bytes = (__u64)get_int(env, o, "wakeupBytes", 0),
			.exclude_tgid = (__u32)get_int(env, o, "excludePid", 0),
			.report_failed = get_int(env, o, "failed", 0) != 0,
		},
		.cgroup_map_fd = (int)get_int(env, o, "cgroupMapFd", -1),
		.mntns_map_fd = (int)get_int(env, o, "mntnsMapFd", -1),
		.ringbuf_bytes = (__u32)get_int(env, o, "ringbufBytes", 8 << 20),
		.poll_ms = (int)get_int(env, o, "pollMs", 100),
		.paced = get_int(env, o, "paced", 0) != 0,
		.libbpf_debug = get_int(env, o, "libbpfDebug", 0) != 0,
	};

	opts.cfg.filter_cgroup = opts.cgroup_map_fd >= 0;
	opts.cfg.filter_mntns = opts.mntns_map_fd >= 0;
	return opts;
}

static struct tracer *get_tracer(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	void *t = NULL;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc < want || napi_get_value_external(env, argv[0], &t) != napi_ok || !t) {
		napi_throw_type_error(env, NULL, "expected a tracer handle");
		return NULL;
	}
	return t;
}

/* ---- the tracer ---- */

/* open(opts, onBatch): open, configure, load, attach, start draining. */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], handle = NULL, name;
	napi_valuetype type = napi_undefined;
	napi_threadsafe_function tsfn = NULL;
	struct tracer_opts opts;
	struct tracer *t = NULL;
	char what[160];
	int err;

	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	if (argc == 2)
		napi_typeof(env, argv[0], &type);
	if (type != napi_object) {
		napi_throw_type_error(env, NULL, "open(opts, onBatch): opts is required");
		return NULL;
	}
	opts = read_opts(env, argv[0]);
	err = tracer_open(&opts, &t, what, sizeof(what));
	if (err)
		return throw_errno(env, what, err);

	napi_create_string_utf8(env, "tcptracer-drain", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[1], NULL, name, BATCH_QUEUE_MAX, 1, NULL, NULL, NULL, call_js,
					    &tsfn) != napi_ok) {
		tracer_destroy(t);
		napi_throw_error(env, NULL, "cannot create thread-safe function");
		return NULL;
	}
	err = tracer_start(t, tsfn);
	if (err) {
		napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
		tracer_destroy(t);
		return throw_errno(env, "starting drain thread", err);
	}
	napi_create_external(env, t, finalize_tracer, NULL, &handle);
	return handle;
}

static napi_value js_stop(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct tracer *t = get_tracer(env, info, 1, argv);

	if (t && t->skel)
		tracer_detach(t);
	return NULL;
}

/* grant(handle, n): paced mode, n more records may be read. */
static napi_value js_grant(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct tracer *t = get_tracer(env, info, 2, argv);
	int64_t n = 0;

	if (!t)
		return NULL;
	if (napi_get_value_int64(env, argv[1], &n) != napi_ok) {
		napi_throw_type_error(env, NULL, "grant(handle, n)");
		return NULL;
	}
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
	napi_value argv[1];
	struct tracer *t = get_tracer(env, info, 1, argv);

	if (t) {
		atomic_store(&t->released, true);
		tracer_wake(t);
	}
	return NULL;
}

/* close(handle): after onBatch(null); the handle's finalizer frees the rest. */
static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct tracer *t = get_tracer(env, info, 1, argv);

	if (t)
		tracer_close(t);
	return NULL;
}

static napi_value js_counters(napi_env env, napi_callback_info info)
{
	napi_value argv[1], r, v;
	struct tracer *t = get_tracer(env, info, 1, argv);

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
	napi_value argv[1], r, v;
	struct tracer *t = get_tracer(env, info, 1, argv);

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

/* ---- host setup ---- */

static napi_value js_ensure_tracefs(napi_env env, napi_callback_info info)
{
	napi_value r;

	napi_create_int32(env, host_ensure_tracefs(), &r);
	return r;
}

static napi_value js_no_new_privs(napi_env env, napi_callback_info info)
{
	napi_value r;

	napi_create_int32(env, host_no_new_privs(), &r);
	return r;
}

static napi_value js_clock_offset_ns(napi_env env, napi_callback_info info)
{
	napi_value r;

	napi_create_bigint_int64(env, host_clock_offset_ns(), &r);
	return r;
}

/* ---- the event layout ---- */

static napi_value event_layout(napi_env env)
{
	struct event_layout layout;
	napi_value obj, fields, pair, v;
	char why[160];

	if (event_layout_read(&layout, why, sizeof(why))) {
		napi_throw_error(env, NULL, why);
		return NULL;
	}
	napi_create_object(env, &obj);
	napi_create_object(env, &fields);
	for (int i = 0; i < layout.nfields; i++) {
		napi_create_array_with_length(env, 2, &pair);
		napi_create_uint32(env, layout.fields[i].offset, &v);
		napi_set_element(env, pair, 0, v);
		napi_create_uint32(env, layout.fields[i].size, &v);
		napi_set_element(env, pair, 1, v);
		napi_set_named_property(env, fields, layout.fields[i].name, pair);
	}
	napi_create_uint32(env, layout.size, &v);
	napi_set_named_property(env, obj, "size", v);
	napi_set_named_property(env, obj, "fields", fields);
	return obj;
}

#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }

static napi_value init(napi_env env, napi_value exports)
{
	napi_value layout = event_layout(env);
	napi_property_descriptor props[] = {
		FN("open", js_open),
		FN("stop", js_stop),
		FN("grant", js_grant),
		FN("release", js_release),
		FN("close", js_close),
		FN("counters", js_counters),
		FN("drainStatus", js_drain_status),
		FN("ensureTracefs", js_ensure_tracefs),
		FN("noNewPrivs", js_no_new_privs),
		FN("clockOffsetNs", js_clock_offset_ns),
		{ "eventLayout", NULL, NULL, NULL, NULL, layout, napi_enumerable, NULL },
	};

	if (!layout)
		return NULL;
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
