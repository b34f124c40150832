/**
 * Preloaded into the CLI by the bench (`node --import bench/prof-hook.ts src/cli.ts`)
 * to CPU-profile exactly the workload: the first SIGUSR2 starts V8's sampling
 * profiler, the second stops it and writes the profile to $TCPTRACER_BENCH_PROF.
 *
 * The file must exist and be writable by anyone (the bench creates it 0666):
 * the CLI writes it after dropping root for its --user (default nobody).
 *
 * Why not `node --cpu-prof`: it samples from the first instruction with SIGPROF,
 * and a signal arriving while the main thread is in the bpf() syscall makes the
 * kernel verifier give up with EAGAIN ("loading BPF program: Resource
 * temporarily unavailable"), so the CLI often fails to start under it.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const out = process.env.TCPTRACER_BENCH_PROF;
const intervalUs = Number(process.env.TCPTRACER_BENCH_PROF_INTERVAL_US ?? '250');

if (out) {
  const session = new Session();
  session.connect();
  let running = false;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => {
        session.post('Profiler.setSamplingInterval', { interval: intervalUs }, () => {
          session.post('Profiler.start');
        });
      });
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      writeFileSync(out, err ? JSON.stringify({ error: err.message }) : JSON.stringify(result.profile));
    });
  });
}
