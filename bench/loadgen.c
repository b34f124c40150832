// SPDX-License-Identifier: Apache-2.0
/*
 * loadgen - TCP connect/accept/close load over loopback, for bench/run.ts.
 *
 *   loadgen --count N [--threads T] [--seconds S] [--netns] [--graceful] [--rate R | --reset-before-accept | --reset-racing-accept]
 *
 * T worker threads (default: one per online CPU), each with its own listening
 * socket on 127.0.0.1 and, in a loop, one full connection at a time:
 *
 *   c = socket(); connect(c, listener)      client: SYN_SENT -> ESTABLISHED  (probe: C)
 *   a = accept4(listener)                   server: accept() returns         (probe: A)
 *   close(a)                                server: ESTABLISHED -> FIN_WAIT1 (probe: X)
 *   read(c) == 0                            client saw the FIN: CLOSE_WAIT
 *   SO_LINGER {1, 0}; close(c)              client: CLOSE_WAIT -> CLOSE, RST (probe: X)
 *
 * so every connection is exactly C, A, X, X for the tracer (4 events), and no
 * socket ever enters TIME_WAIT (the server's FIN_WAIT2 is ended by the RST):
 * ports are never exhausted whatever the count. On loopback all of it runs
 * synchronously in the calling thread (softirq included), so T threads keep T
 * CPUs busy with kernel TCP work: this saturates the kernel, a Node loop does not.
 *
 * --graceful: the client closes with a FIN instead (no SO_LINGER): CLOSE_WAIT ->
 * LAST_ACK (probe: X) -> CLOSE, still C, A, X, X; the server's socket, which
 * closed first, waits in TIME_WAIT. Its ports do not run out: a TIME_WAIT
 * socket holds the server's 4-tuple, not a port the client binds, a SYN that
 * meets one (a client port used again) opens a new connection (timestamps are
 * on), and the namespace holds at most tcp_max_tw_buckets of them (131072
 * here; past it the kernel frees a closing socket at once). Neither the
 * client nor the server (nothing is reset) aborts the connection, so a sampler
 * that keeps every reset connection samples these. Not with the reset modes.
 *
 * --reset-before-accept: each thread connects 64 clients and resets each at
 * once (SO_LINGER {1, 0}; close: RST) while the server has not accepted it
 * yet, then accepts the batch (non-blocking, until all 64 or 100 ms of
 * nothing) and closes what it accepted. accept() returns the reset sockets
 * (state CLOSE), so every connection is C and X (client), then A and X
 * (server, both at accept); "accepted" in the output says how many the server
 * got back, for the expected counts, and "closed_at_accept" how many of those
 * were already in TCP_CLOSE when accept() returned them (tcp_info): the reset
 * did come before the accept.
 *
 * --reset-racing-accept: each thread is a client pinned to one CPU, with a
 * server thread of its own pinned to the next CPU that blocks in accept4()
 * (until 100 ms pass with nothing: SO_RCVTIMEO) and closes what it gets. The client
 * connects and resets at once (SO_LINGER {1, 0}; close): the server, woken by
 * the handshake, is inside accept() on the other CPU when the RST arrives, so
 * the reset races the accept. Connections reset before they were queued are
 * never accepted ("accepted" says how many were).
 *
 * --rate R: paced instead of as fast as possible: R connections per second in
 * all, each thread R/T. Connection j of the run (over all threads, thread
 * j mod T) is due at t0 + j/R, an absolute deadline on CLOCK_MONOTONIC that a
 * thread sleeps until with clock_nanosleep(TIMER_ABSTIME) before connecting:
 * the schedule does not drift with the time each connection takes, and a
 * thread that fell behind (preempted) connects at once until it is back on
 * schedule. So the run lasts N/R seconds when the machine keeps up; conn/s in
 * the output (connections / wall_s) says what was achieved. Not with
 * --reset-before-accept (batches are not paced).
 *
 * --netns: first move into a fresh network namespace of our own (unshare), bring
 * its lo up and widen its port range there; the host's sysctls are not touched
 * and the namespace disappears with the process. Tracers see all namespaces.
 *
 * The connection count is split evenly among threads; the run stops at N or
 * after S seconds (default 60), whichever comes first. Prints one JSON line:
 * {"connections":..,"accepted":..,"wall_s":..,"user_s":..,"sys_s":..,"threads":..,"rate":..,"errors":..}
 * where user/sys are getrusage(RUSAGE_SELF): the whole process, both ends of
 * every connection, and the softirq work the kernel charged to it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct worker {
	pthread_t thread;
	long index;
	int listener;
	struct sockaddr_in addr;
	long target;
	long done;
	long accepted;
	long closed_at_accept; /* accepted sockets already in TCP_CLOSE: the reset did come first */
	atomic_bool client_done; /* --reset-racing-accept: the server thread may stop once idle */
	long errors;
	char last_error[128];
};

static atomic_bool stop_now;
static double deadline;
static long batch; /* --reset-before-accept: connections per batch (64); 0: the normal loop */
static bool racing; /* --reset-racing-accept */
static bool graceful; /* --graceful: the client closes with a FIN, not a reset */
static double rate; /* --rate: connections per second over all threads; 0: as fast as possible */
static long nthreads;
static struct timespec start_ts; /* t0 of the pacing schedule (CLOCK_MONOTONIC) */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void note(struct worker *w, const char *what)
{
	w->errors++;
	snprintf(w->last_error, sizeof(w->last_error), "%s: %s", what, strerror(errno));
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		fail(path);
	close(fd);
}

static void enter_fresh_netns(void)
{
	struct ifreq ifr;
	int s;

	if (unshare(CLONE_NEWNET))
		fail("unshare(CLONE_NEWNET)");
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		fail("socket");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		fail("SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		fail("SIOCSIFFLAGS lo");
	close(s);
	/* per-namespace sysctls: only this namespace sees them */
	write_file("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535");
	write_file("/proc/sys/net/ipv4/tcp_tw_reuse", "1");
	write_file("/proc/sys/net/core/somaxconn", "4096");
}

/* --rate: sleeps until this thread's next connection is due (connection index*T + done of the run, at t0 + j/R) */
static void pace(const struct worker *w)
{
	double due_ns = (double)(w->index + w->done * nthreads) * 1e9 / rate;
	long long ns = (long long)start_ts.tv_nsec + (long long)due_ns;
	struct timespec due = { .tv_sec = start_ts.tv_sec + (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR)
		;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	char byte;

	while (w->done < w->target && !atomic_load_explicit(&stop_now, memory_order_relaxed)) {
		int c, a;

		if (rate > 0)
			pace(w);
		if ((rate > 0 || (w->done & 255) == 0) && now_s() > deadline) {
			atomic_store(&stop_now, true);
			break;
		}
		c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0) {
			note(w, "socket");
			break;
		}
		if (connect(c, (struct sockaddr *)&w->addr, sizeof(w->addr))) {
			note(w, "connect");
			close(c);
			if (w->errors > 100)
				break;
			continue;
		}
		a = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0) {
			note(w, "accept4");
			close(c);
			break;
		}
		close(a);
		if (read(c, &byte, 1) != 0)
			note(w, "read (expected EOF)");
		if (!graceful)
			setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		close(c);
		w->done++;
	}
	return NULL;
}

/* Connects to the worker's listener and resets at once (SO_LINGER {1, 0}; close: RST): 0, 1 if connect() failed, -1 if socket() did */
static int connect_reset(struct worker *w)
{
	const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0) {
		note(w, "socket");
		return -1;
	}
	if (connect(c, (struct sockaddr *)&w->addr, sizeof(w->addr))) {
		note(w, "connect");
		close(c);
		return 1;
	}
	setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	close(c);
	return 0;
}

/* An accepted socket: counted, and whether its reset came before accept() returned it. */
static void accepted(struct worker *w, int a)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!getsockopt(a, IPPROTO_TCP, TCP_INFO, &ti, &len) && ti.tcpi_state == TCP_CLOSE)
		w->closed_at_accept++;
	close(a);
	w->accepted++;
}

/* --reset-before-accept: B connections reset by their client, then accepted by the server */
static void *run_reset_before_accept(void *arg)
{
	struct worker *w = arg;

	while (w->done < w->target && !atomic_load_explicit(&stop_now, memory_order_relaxed)) {
		long n = w->target - w->done < batch ? w->target - w->done : batch, made = 0, got = 0;

		if (now_s() > deadline) {
			atomic_store(&stop_now, true);
			break;
		}
		for (long i = 0; i < n; i++) {
			int r = connect_reset(w);

			if (r < 0)
				break;
			made += !r;
		}
		while (got < made) {
			struct pollfd p = { .fd = w->listener, .events = POLLIN };
			int a = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);

			if (a >= 0) {
				accepted(w, a);
				got++;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (poll(&p, 1, 100) <= 0)
					break; /* nothing more within 100 ms */
			} else if (errno != ECONNABORTED) {
				note(w, "accept4");
				break;
			}
		}
		w->done += made;
		if (w->errors > 100 || !made)
			break;
	}
	return NULL;
}

static void pin(long cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET((int)(cpu % sysconf(_SC_NPROCESSORS_ONLN)), &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* --reset-racing-accept, server side: accept and close until the client is done and nothing is left */
static void *run_racing_server(void *arg)
{
	struct worker *w = arg;

	pin(w->index + 1);
	for (;;) {
		int a = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);

		if (a >= 0) {
			accepted(w, a);
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (atomic_load(&w->client_done))
				break;
		} else if (errno != ECONNABORTED) {
			note(w, "accept4");
			break;
		}
	}
	return NULL;
}

/* --reset-racing-accept, client side: connect and reset at once */
static void *run_racing_client(void *arg)
{
	struct worker *w = arg;
	pthread_t server;

	if (pthread_create(&server, NULL, run_racing_server, w))
		fail("pthread_create");
	pin(w->index);
	while (w->done < w->target && w->errors <= 100) {
		int r;

		if ((w->done & 255) == 0 && now_s() > deadline) {
			atomic_store(&stop_now, true);
			break;
		}
		r = connect_reset(w);
		if (r < 0)
			break;
		w->done += !r;
	}
	atomic_store(&w->client_done, true);
	pthread_join(server, NULL);
	return NULL;
}

int main(int argc, char **argv)
{
	long count = 0, threads = sysconf(_SC_NPROCESSORS_ONLN);
	double seconds = 60, t0, wall;
	int netns = 0;
	struct worker *ws;
	struct rusage ru;
	long done = 0, accepted = 0, closed_at_accept = 0, errors = 0;
	const struct timeval idle = { .tv_usec = 100000 };
	const char *last_error = "";

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atol(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atol(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--netns"))
			netns = 1;
		else if (!strcmp(argv[i], "--reset-before-accept"))
			batch = 64;
		else if (!strcmp(argv[i], "--reset-racing-accept"))
			racing = true;
		else if (!strcmp(argv[i], "--graceful"))
			graceful = true;
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: loadgen --count N [--threads T] [--seconds S] [--netns] [--graceful] [--rate R | --reset-before-accept | --reset-racing-accept]\n"
					"  --rate R: R connections per second over all threads, each thread on absolute deadlines\n");
			return 2;
		}
	}
	if (count <= 0 || threads <= 0 || threads > 1024 || seconds <= 0 || rate < 0) {
		fprintf(stderr, "loadgen: --count and --threads must be positive, --rate not negative\n");
		return 2;
	}
	if (graceful && (batch || racing)) {
		fprintf(stderr, "loadgen: --graceful closes the normal loop's clients: not with --reset-before-accept or --reset-racing-accept\n");
		return 2;
	}
	if ((rate > 0) + !!batch + racing > 1) {
		fprintf(stderr, "loadgen: --rate, --reset-before-accept and --reset-racing-accept are modes: one at a time\n");
		return 2;
	}
	nthreads = threads;
	if (netns)
		enter_fresh_netns();

	ws = calloc((size_t)threads, sizeof(*ws));
	if (!ws)
		fail("calloc");
	for (long i = 0; i < threads; i++) {
		struct worker *w = &ws[i];
		socklen_t len = sizeof(w->addr);

		w->index = i;
		w->target = count / threads + (i < count % threads ? 1 : 0);
		w->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (w->listener < 0)
			fail("socket");
		w->addr.sin_family = AF_INET;
		w->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		w->addr.sin_port = 0;
		if (bind(w->listener, (struct sockaddr *)&w->addr, sizeof(w->addr)) ||
		    listen(w->listener, 128) ||
		    getsockname(w->listener, (struct sockaddr *)&w->addr, &len))
			fail("listen on 127.0.0.1");
		if (batch && fcntl(w->listener, F_SETFL, O_NONBLOCK))
			fail("O_NONBLOCK on the listener");
		/* a blocking accept() that gives up after 100 ms idle (SO_RCVTIMEO) */
		if (racing && setsockopt(w->listener, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle)))
			fail("SO_RCVTIMEO on the listener");
	}

	clock_gettime(CLOCK_MONOTONIC, &start_ts);
	t0 = (double)start_ts.tv_sec + (double)start_ts.tv_nsec / 1e9;
	deadline = t0 + seconds;
	for (long i = 0; i < threads; i++)
		if (pthread_create(&ws[i].thread, NULL, racing ? run_racing_client : batch ? run_reset_before_accept : run, &ws[i]))
			fail("pthread_create");
	for (long i = 0; i < threads; i++) {
		pthread_join(ws[i].thread, NULL);
		done += ws[i].done;
		accepted += batch || racing ? ws[i].accepted : ws[i].done;
		closed_at_accept += ws[i].closed_at_accept;
		errors += ws[i].errors;
		if (ws[i].errors)
			last_error = ws[i].last_error;
	}
	wall = now_s() - t0;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"connections\":%ld,\"accepted\":%ld,\"closed_at_accept\":%ld,\"requested\":%ld,\"wall_s\":%.6f,\"user_s\":%.6f,\"sys_s\":%.6f,"
	       "\"threads\":%ld,\"rate\":%g,\"netns\":%s,\"timed_out\":%s,\"errors\":%ld,\"last_error\":\"%s\"}\n",
	       done, accepted, closed_at_accept, count, wall, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, threads, rate,
	       netns ? "true" : "false", atomic_load(&stop_now) ? "true" : "false", errors, last_error);
	return errors && !done ? 1 : 0;
}
