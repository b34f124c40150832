# syntax=docker/dockerfile:1
#
# tcptracer-otel: eBPF TCP connect/accept/close tracer exporting OTLP.
#
# Build and push (a cluster pulls the image from a registry you choose; nothing is published for you):
#   docker build -t REGISTRY/tcptracer-otel:0.1.0 .
#   docker push REGISTRY/tcptracer-otel:0.1.0
# Run (kernel 5.8+ with BTF and cgroup v2; the host's kernel does the tracing, the container only
# needs capabilities at start and a few host paths):
#
#   docker run --rm --name tcptracer \
#     --pid=host --read-only --security-opt no-new-privileges \
#     --cap-drop ALL --cap-add BPF --cap-add PERFMON --cap-add SETUID --cap-add SETGID \
#     --cap-add SYS_RESOURCE \
#     -v /sys/kernel/btf:/sys/kernel/btf:ro \
#     -v /sys/kernel/tracing:/sys/kernel/tracing:ro \
#     -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro -e TCPTRACER_CGROUP_ROOT=/host/sys/fs/cgroup \
#     -v /sys/fs/bpf:/sys/fs/bpf \
#     -e OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.example:4317 \
#     REGISTRY/tcptracer-otel:0.1.0
#
#   --pid=host                 events carry host PIDs; -p/--mntnsmap filters need the host's processes,
#                              and container/pod identity is read from /proc/PID/cgroup of each one
#   --read-only                nothing writes to the image at run time: no cache, no temporary files
#                              (the only write is mounting tracefs when /sys/kernel/tracing is empty,
#                              which the bind mount below avoids; pinned maps live in /sys/fs/bpf)
#   no-new-privileges          nothing the process executes can gain privileges
#   BPF, PERFMON               load the probe and attach it to tracepoints (no --privileged needed)
#   SETUID, SETGID             drop to nobody once the probe is attached (without them the tracer
#                              exits at start with a one-line error rather than stay root)
#   SYS_RESOURCE               raise RLIMIT_MEMLOCK on kernels before 5.11 (or: --ulimit memlock=-1);
#                              not needed from 5.11 on, where BPF maps are charged to the memory cgroup
#   /sys/kernel/btf (ro)       kernel type information for CO-RE relocation
#   /sys/kernel/tracing (ro)   tracepoint ids; bind-mounted so the tracer never has to mount tracefs
#                              (which would need SYS_ADMIN)
#   /sys/fs/cgroup (ro)        the host's cgroup v2 tree, where TCPTRACER_CGROUP_ROOT points: the
#                              container's own /sys/fs/cgroup shows only its own cgroup, and each
#                              event's cgroup id is resolved to container.id / k8s.pod.uid there
#   /sys/fs/bpf                pinned maps for --cgroupmap / --mntnsmap (leave it out otherwise)
#   OTEL_*                     exporter settings (endpoint, headers, TLS, ...); see README.md, "OTLP mode"
# Privileges: the container starts as root (no USER: the capabilities above are effective only for
# uid 0) and the tracer drops them itself: once the probe is attached and its maps, ring buffer and
# TLS files are open, it clears its groups and becomes `--user` (default nobody, uid 65534, which the
# Debian base image's /etc/passwd has) on every thread, with no capabilities and no_new_privs set.
# `--user root` keeps root. Do not use `docker run --user`: a container started as another uid
# gets added capabilities in its bounding set only (no ambient ones), so it could load nothing.
# If Docker's seccomp profile on the host predates CAP_BPF/CAP_PERFMON (bpf() and perf_event_open()
# then need SYS_ADMIN), add --security-opt seccomp=unconfined rather than SYS_ADMIN.
# Arguments after the image name are appended to `--otlp -q`, e.g. `... tcptracer-otel:0.1.0 -p 1234`.
#
# test/unit-dockerfile.test.ts builds both stages without Docker (scratch directories holding only
# what each COPY brings, the npm commands run for real, the apt packages checked) and starts the
# entrypoint with --help: keep every instruction to the forms it understands.

# ---- build: everything from source with the project's own commands ----
FROM node:26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
# node-gyp: use the headers shipped in the image instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
# Everything `npm run build` reads: binding.gyp (build:native), both tsconfigs (build:ts).
COPY tsconfig.json tsconfig.build.json binding.gyp ./
COPY bpf/ bpf/
COPY src/ src/
RUN npm run build \
 && npm prune --omit=dev

# ---- runtime: Node, the three shared libraries the loader links, and the build outputs (the loader
# embeds the BPF object: its libbpf skeleton) ----
FROM node:26-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libelf1 zlib1g \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/build/Release/tcptracer_loader.node build/Release/
ENV NODE_ENV=production
ENTRYPOINT ["node", "--initial-old-space-size=4", "dist/src/cli.js", "--otlp", "-q"]
