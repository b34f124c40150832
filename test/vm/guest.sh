#!/bin/bash
# Stage 2, PID 1 of the guest after switch_root (the host's bash on the guest's
# kernel, with the environment init exported from guest.env): mount what the
# tracer and the tests expect, run the kernel tests from the checkout with the
# host's node and build, write their exit code to the run directory for run.sh,
# and power off. One function, read whole before it runs: bash reads a script
# as it goes, and this one sits on the host's disk while the tests run.
set -euo pipefail

# shellcheck disable=SC2317 # (the EXIT trap)
finish() {
  echo "$rc" >"$TT_OUT/rc"
  sync
  echo o >/proc/sysrq-trigger
  read -r -t 60 _ <>/dev/console 2>/dev/null || true # a builtin: no exec from the 9p root as it goes
}

main() {
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  : "${TT_ROOT:?}" "${TT_OUT:?}" "${TT_GUEST_TIMEOUT:?}"
  rc=1
  trap finish EXIT

  mkdir -p /dev/pts /dev/shm
  mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  # /tmp stays the overlay's (writable; a checkout may live there), /run starts empty
  mount -t tmpfs -o mode=0755 tmpfs /run
  mount -t bpf bpf /sys/fs/bpf
  mount -t tracefs tracefs /sys/kernel/tracing
  mount -t debugfs debugfs /sys/kernel/debug
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
  ln -sfn /proc/self/fd /dev/fd
  ip link set lo up
  hostname tt-vm
  # netem for test/kernel-health.test.ts (delay and loss on a veth): a module in Debian's
  # kernels, loaded by the host's modprobe (kmod, run.sh) from the package's modules bound
  # above; where it fails, that test says why (and fails under CI=true)
  modprobe sch_netem || echo "tt-vm: modprobe sch_netem failed"
  # a process killed by SIGSEGV, SIGILL, SIGABRT...: the kernel logs the signal and registers
  echo 1 >/proc/sys/kernel/print-fatal-signals

  echo "tt-vm: Linux $(uname -r), $(nproc) CPUs, booted in $(cut -d' ' -f1 /proc/uptime) s"
  cd "$TT_ROOT"
  export HOME=/root
  export PATH="$TT_ROOT/node_modules/.bin:$PATH"
  local args
  mapfile -d '' -t args <"$TT_OUT/args" # node --test options, then the test files
  set +e
  # bounded here too, so that the exit code still reaches run.sh before its own timeout;
  # 15 min a test, not the host's 5: under emulation the 20000-connection OTLP burst
  # alone took 200 to 380 s from one run to the next on the same machine
  timeout --kill-after=10 "$TT_GUEST_TIMEOUT" \
    node --test --test-concurrency=1 --test-timeout=900000 "${args[@]}"
  rc=$?
  set -e
  echo "tt-vm: tests exited $rc at $(cut -d' ' -f1 /proc/uptime) s of uptime"
  # page reclaim: file pages (node's code among them, on 9p) dropped and faulted in again
  echo "tt-vm: $(grep -E '^(pgmajfault|pgsteal_kswapd|pgsteal_direct|workingset_refault_file) ' /proc/vmstat | tr '\n' ' ')"
  # what the kernel said about crashed processes, warnings, oopses (quiet hides them)
  dmesg | grep -E -A14 'segfault|traps:|invalid opcode|general protection|BUG|WARNING|Oops|Call Trace|oom|unexpected fatal signal' |
    sed 's/^/tt-vm: dmesg: /' | tail -120 || true
}

main
exit
