// SPDX-License-Identifier: GPL-2.0
/*
 * fault_bench - cost per page fault of four fault kinds, to compare kernels
 * that differ only in how the page-fault lock protocol is implemented.
 *
 *  anon    first-touch write faults on private anonymous memory
 *  swapin  read faults on private anon pages pushed out with MADV_PAGEOUT
 *  uffd    read faults on a MISSING-registered range, each resolved by a
 *          handler thread with one UFFDIO_COPY (a full round trip)
 *  file    read faults on a MAP_SHARED mapping of a file on a ramfs of
 *          the case's own, with fault_around_bytes set to one page if
 *          debugfs has it
 *
 * Each kind is a fixture (kselftest_harness.h) with four variants: 1 or 2
 * faulting threads (each faults its own part of the range, released
 * together by a barrier), without and with the "writer": a thread that,
 * during the whole timed section, loops mprotect() of a populated shared
 * mapping of WRITER_PAGES pages of its own between read-only and
 * read-write, as a runtime's garbage collector might. Each mprotect() holds
 * mmap_lock for write across a walk of the mapping's page table, so a fault
 * that needs mmap_lock queues behind it; the mapping is shared so that it
 * never merges with a faulted range. The 16 cases, in the order they run:
 *
 *   KIND.threads1.bench  KIND.threads1_writer.bench
 *   KIND.threads2.bench  KIND.threads2_writer.bench
 *
 * for KIND anon, swapin, uffd, file. The harness runs each in a process of
 * its own: the fixture's setup is the case's (the uffd handler thread, the
 * ramfs file), and its file pages are written anew for each file case,
 * which changes nothing measured: only the faults that map them are timed,
 * after a warm-up repeat. fault_around_bytes is system-wide: main() sets it
 * once for the whole run and restores it at exit.
 *
 * A case runs one untimed warm-up repeat, then R measured ones, each
 * printed as one line, which lab/src/bench/sample.rs reads:
 *
 *   # bench kind=K threads=T writer=W rep=I pages=P faults=F majflt=M ns=N \
 *           ns_per_fault=X cpu_ns=C writer_ops=O
 *
 * one line (folded here at the backslash), its fields in this order, each
 * NAME=VALUE, one space apart. K is the kind, T the faulting threads, W 1
 * with the writer and 0 without, I the measured repeat (0 to R-1), P the
 * pages faulted, F the faults the kernel counted for the
 * faulting threads (RUSAGE_THREAD minflt + majflt), M the majflt of them,
 * O the writer's mprotect() calls. Two times: N (ns) is CLOCK_MONOTONIC
 * from barrier release to the last faulting thread done, and X is N / P
 * with one decimal; C (cpu_ns) is the faulting threads' own CPU time
 * (CLOCK_THREAD_CPUTIME_ID) in their timed loops, summed. Under QEMU
 * -icount shift=0 with one vCPU both count instructions: ns all of them,
 * cpu_ns those of the faulting threads, which is where the fault path runs
 * (the uffd handler's UFFDIO_COPY and the writer's mprotect() are not in
 * it). The uffd handler runs SCHED_FIFO, so that each round trip takes the
 * same way through the scheduler. Before the harness's TAP, one line gives
 * the run's settings:
 *
 *   # bench config pages=P repeats=R fault_around_bytes=B cpus=N
 *
 * A case fails if the kernel counted fewer faults than 90% of the pages
 * touched, if fewer than 90% of the pages were really swapped out
 * (swapin), or if any page does not hold the expected content afterwards;
 * its log names the repeat (rep=-1 is the warm-up) and the first bad page.
 * swapin skips without an active swap area, uffd without userfaultfd, file
 * where it cannot mount a ramfs.
 *
 * Usage: fault_bench [-p PAGES] [-r REPEATS] [-k KIND[,KIND...]] [-q] [-- HARNESS OPTIONS]
 *
 * -p pages faulted per repeat (default 4096), -r measured repeats per case
 * (default 5), -k the kinds to run (default all), -q the smoke run (256
 * pages, one repeat). The harness's own options (-l to list the cases,
 * -r NAME or -t NAME to run some, ...) go after "--": -r before it is this
 * program's repeats. -k drops the cases of the other kinds (harness filters
 * -F KIND, given before those after "--"). A case's harness timeout grows
 * with -p and -r (set_timeouts()).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <time.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "vm_util.h"
#include "guest_util.h"

#define MAX_THREADS	2
/* The writer's mapping: 16 MiB of 4 KiB pages, whose walk takes ~0.1 ms+. */
#define WRITER_PAGES	4096
#define FAB_PATH	"/sys/kernel/debug/fault_around_bytes"
/* Where the file case mounts its ramfs, in a mount namespace of its own. */
#define RAMFS_DIR	"/tmp"
#define RAMFS_FILE	RAMFS_DIR "/fault_bench.data"
/* Page @i holds this at offset 0 (and at its last 8 bytes, except anon). */
#define PATTERN(i)	(0xfb00000000000000UL | (unsigned long)(i))
/* One access per page that the compiler can neither drop nor merge. */
#define READ_ONCE(x)	(*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

enum { K_ANON, K_SWAPIN, K_UFFD, K_FILE, NR_KINDS };
static const char * const kind_name[NR_KINDS] = {
	"anon", "swapin", "uffd", "file"
};

/* Set by main() before the harness runs a case; read-only in the cases. */
static long page_size;
static unsigned long opt_pages;
static int opt_repeats;

/* fault_around_bytes as main() found it, restored at exit or on a signal. */
static char fab_old[32];
static bool fab_changed;
static pid_t main_pid;

/* One case: a kind, a thread count and the writer setting. */
struct bench_case {
	struct __test_metadata *md;	/* for the threads' TH_LOG() */
	int kind;
	int nr_threads;
	bool writer;
	char *area;			/* the range faulted in this repeat */
	pthread_barrier_t barrier;
	int running;			/* faulting threads not done yet */
	int writer_stop;
	unsigned long writer_ops;
	int uffd;			/* uffd: the userfaultfd, else -1 */
	int stop_pipe[2];		/* tells the uffd handler to exit */
	char *uffd_src;			/* one page, the UFFDIO_COPY source */
	pthread_t handler;
	int file_fd;			/* file: the ramfs file, else -1 */
	char *file_map;			/* file: its mapping, read-only */
};

/* One faulting thread and what it measured. */
struct worker {
	struct bench_case *bc;
	pthread_t tid;
	unsigned long first, nr;	/* page range it faults */
	struct timespec t0, t1;
	struct timespec cpu0, cpu1;	/* its own CPU time at t0, t1 */
	long minflt, majflt;
};

/*
 * A thread other than the case's own cannot ASSERT (the harness unwinds
 * the case's thread): it logs why and ends the case's process as failed.
 */
#define THREAD_FAIL(bc, fmt, ...) do {					\
	struct __test_metadata *_metadata = (bc)->md;			\
									\
	TH_LOG(fmt, ##__VA_ARGS__);					\
	_exit(KSFT_FAIL);						\
} while (0)

static long ts_ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000L + ts->tv_nsec;
}

/* Read a small sysfs/debugfs file into @buf without the newline. */
static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* atexit() of main(): restore fault_around_bytes. */
static void restore_fault_around(void)
{
	if (fab_changed && write_str(FAB_PATH, fab_old))
		ksft_print_msg("could not restore %s to %s\n", FAB_PATH, fab_old);
}

/*
 * SIGINT/TERM/HUP/PIPE: main() restores fault_around_bytes (async-signal-
 * safe calls only) and dies; a case's process, which inherits the handler,
 * only dies: the setting is main()'s.
 */
static void on_signal(int sig)
{
	if (fab_changed && getpid() == main_pid)
		write_str(FAB_PATH, fab_old);
	raise(sig);			/* SA_RESETHAND: default action */
}

/* Set fault_around_bytes to one page; return the value in effect. */
static const char *set_fault_around(void)
{
	static char now[32];
	char one[16];

	if (read_str(FAB_PATH, fab_old, sizeof(fab_old)))
		return "unknown";
	snprintf(one, sizeof(one), "%ld", page_size);
	if (strcmp(fab_old, one) && !write_str(FAB_PATH, one))
		fab_changed = true;
	if (read_str(FAB_PATH, now, sizeof(now)))
		return "unknown";
	return now;
}

/* Write the index pattern at the start and the end of page @i at @p. */
static void fill_page(char *p, unsigned long i)
{
	*(unsigned long *)p = PATTERN(i);
	*(unsigned long *)(p + page_size - 8) = PATTERN(i);
}

/*
 * Return the first of @pages pages at @area not holding PATTERN(index) at
 * offset 0, PATTERN(index) (or 0 if !@tail) in the last word and zeroes in
 * between; -1 if all are good.
 */
static long first_bad_page(const char *area, unsigned long pages, bool tail)
{
	unsigned long i, j, nw = page_size / sizeof(long);

	for (i = 0; i < pages; i++) {
		const unsigned long *w = (const void *)(area + i * page_size);

		if (w[0] != PATTERN(i) || w[nw - 1] != (tail ? PATTERN(i) : 0))
			return i;
		for (j = 1; j < nw - 1; j++)
			if (w[j])
				return i;
	}
	return -1;
}

/* Map the private anon range of a repeat, without THP or mTHP. */
static void map_anon(struct __test_metadata *_metadata, struct bench_case *bc)
{
	size_t len = opt_pages * page_size;

	bc->area = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bc->area) TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, madvise(bc->area, len, MADV_NOHUGEPAGE))
		TH_LOG("MADV_NOHUGEPAGE: %s", strerror(errno));
}

/* Fill the range, page it out and check in pagemap that >= 90% is out. */
static void prepare_swapin(struct __test_metadata *_metadata, struct bench_case *bc)
{
	unsigned long i, out = 0;
	int fd;

	for (i = 0; i < opt_pages; i++)
		fill_page(bc->area + i * page_size, i);
	ASSERT_EQ(0, madvise(bc->area, opt_pages * page_size, MADV_PAGEOUT))
		TH_LOG("MADV_PAGEOUT: %s", strerror(errno));
	fd = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_GE(fd, 0) TH_LOG("/proc/self/pagemap: %s", strerror(errno));
	for (i = 0; i < opt_pages; i++)
		out += pagemap_is_swapped(fd, bc->area + i * page_size);
	close(fd);
	ASSERT_GE(out * 10, opt_pages * 9)
		TH_LOG("only %lu of %lu pages swapped out by MADV_PAGEOUT", out, opt_pages);
}

/* Register the fresh range with the case's userfaultfd for MISSING faults. */
static void register_uffd(struct __test_metadata *_metadata, struct bench_case *bc)
{
	uint64_t ioctls = 0;
	int ret;

	ret = uffd_register_with_ioctls(bc->uffd, bc->area, opt_pages * page_size,
					true, false, false, &ioctls);
	ASSERT_EQ(0, ret) TH_LOG("UFFDIO_REGISTER: %s", strerror(-ret));
	ASSERT_TRUE(!!(ioctls & (1ULL << _UFFDIO_COPY)))
		TH_LOG("UFFDIO_COPY not offered for the range");
}

/* Resolve the fault at @addr with one UFFDIO_COPY of its page's pattern. */
static void uffd_resolve(struct bench_case *bc, unsigned long addr)
{
	char *area = __atomic_load_n(&bc->area, __ATOMIC_ACQUIRE);
	unsigned long dst = addr & ~(page_size - 1);
	struct uffdio_copy copy = {
		.dst = dst, .src = (uintptr_t)bc->uffd_src, .len = page_size,
	};
	struct uffdio_range range = { .start = dst, .len = page_size };

	fill_page(bc->uffd_src, (dst - (uintptr_t)area) / page_size);
	while (ioctl(bc->uffd, UFFDIO_COPY, &copy)) {
		if (errno == EAGAIN) {		/* mm changing: try again */
			copy.copy = 0;
			continue;
		}
		/* Page already there: the failed copy woke nobody, wake here. */
		if (errno == EEXIST && !ioctl(bc->uffd, UFFDIO_WAKE, &range))
			return;
		THREAD_FAIL(bc, "UFFDIO_COPY at %#lx: %s", dst, strerror(errno));
	}
}

/* uffd handler thread: poll, read one fault message, resolve it. */
static void *uffd_handler(void *arg)
{
	struct bench_case *bc = arg;
	struct pollfd pfd[2] = {
		{ .fd = bc->uffd, .events = POLLIN },
		{ .fd = bc->stop_pipe[0], .events = POLLIN },
	};
	struct sched_param sp = { .sched_priority = 1 };
	struct uffd_msg msg;
	int err;

	/*
	 * Run before any faulting thread as soon as a fault wakes us, so that
	 * every round trip takes the same way through the scheduler: with
	 * both threads in the fair class, whether the faulting thread sleeps
	 * before its fault is resolved changes from repeat to repeat, and
	 * with it the instructions per fault by up to 20%.
	 */
	err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (err)
		THREAD_FAIL(bc, "uffd handler: SCHED_FIFO: %s", strerror(err));
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			THREAD_FAIL(bc, "uffd poll: %s", strerror(errno));
		}
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents & (POLLERR | POLLHUP))
			THREAD_FAIL(bc, "uffd poll: revents %#x", pfd[0].revents);
		if (read(bc->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN)
				continue;
			THREAD_FAIL(bc, "uffd read: %s", strerror(errno));
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			THREAD_FAIL(bc, "unexpected uffd event %u", msg.event);
		uffd_resolve(bc, msg.arg.pagefault.address);
	}
}

/* Faulting thread: one access per page of its range, timed and counted. */
static void *fault_worker(void *arg)
{
	struct worker *w = arg;
	struct bench_case *bc = w->bc;
	char *p = bc->area + w->first * page_size;
	struct rusage r0, r1;
	unsigned long i;

	getrusage(RUSAGE_THREAD, &r0);
	pthread_barrier_wait(&bc->barrier);
	clock_gettime(CLOCK_MONOTONIC, &w->t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &w->cpu0);
	if (bc->kind == K_ANON) {
		for (i = 0; i < w->nr; i++, p += page_size)
			WRITE_ONCE(*(unsigned long *)p, PATTERN(w->first + i));
	} else {
		for (i = 0; i < w->nr; i++, p += page_size)
			(void)READ_ONCE(*(unsigned long *)p);
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &w->cpu1);
	clock_gettime(CLOCK_MONOTONIC, &w->t1);
	getrusage(RUSAGE_THREAD, &r1);

	if (__atomic_sub_fetch(&bc->running, 1, __ATOMIC_ACQ_REL) == 0)
		__atomic_store_n(&bc->writer_stop, 1, __ATOMIC_RELEASE);
	w->minflt = r1.ru_minflt - r0.ru_minflt;
	w->majflt = r1.ru_majflt - r0.ru_majflt;
	return NULL;
}

/*
 * Writer thread: populate its own shared mapping (untimed), then mprotect()
 * it between read-only and read-write until the faulters are done.
 */
static void *writer_thread(void *arg)
{
	struct bench_case *bc = arg;
	size_t len = WRITER_PAGES * page_size;
	unsigned long ops = 0, i;
	char *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		THREAD_FAIL(bc, "writer mmap: %s", strerror(errno));
	for (i = 0; i < WRITER_PAGES; i++)
		WRITE_ONCE(p[i * page_size], 1);
	pthread_barrier_wait(&bc->barrier);
	while (!__atomic_load_n(&bc->writer_stop, __ATOMIC_ACQUIRE)) {
		if (mprotect(p, len, ops & 1 ? PROT_READ | PROT_WRITE : PROT_READ))
			THREAD_FAIL(bc, "writer mprotect: %s", strerror(errno));
		ops++;
	}
	munmap(p, len);
	bc->writer_ops = ops;
	return NULL;
}

/* Prepare the range for one repeat (untimed). */
static void prepare_repeat(struct __test_metadata *_metadata, struct bench_case *bc)
{
	if (bc->kind == K_FILE) {
		bc->area = bc->file_map;
		ASSERT_EQ(0, madvise(bc->area, opt_pages * page_size, MADV_DONTNEED))
			TH_LOG("MADV_DONTNEED: %s", strerror(errno));
		return;
	}
	map_anon(_metadata, bc);
	if (bc->kind == K_SWAPIN)
		prepare_swapin(_metadata, bc);
	else if (bc->kind == K_UFFD)
		register_uffd(_metadata, bc);
}

/*
 * Run one repeat of @bc: prepare, fault with all threads, check counts and
 * content, print the bench line if @rep >= 0 (not the warm-up).
 */
static void run_repeat(struct __test_metadata *_metadata, struct bench_case *bc, int rep)
{
	struct worker w[MAX_THREADS] = {};
	long t0 = 0, t1 = 0, cpu_ns = 0, minflt = 0, majflt = 0, ns, bad;
	pthread_t writer;
	int i;

	bc->area = NULL;
	prepare_repeat(_metadata, bc);

	bc->running = bc->nr_threads;
	bc->writer_stop = 0;
	bc->writer_ops = 0;
	ASSERT_EQ(0, pthread_barrier_init(&bc->barrier, NULL,
					  bc->nr_threads + bc->writer));
	if (bc->writer) {	/* an ASSERT_*() is two statements */
		ASSERT_EQ(0, pthread_create(&writer, NULL, writer_thread, bc));
	}
	for (i = 0; i < bc->nr_threads; i++) {
		w[i].bc = bc;
		w[i].first = opt_pages * i / bc->nr_threads;
		w[i].nr = opt_pages * (i + 1) / bc->nr_threads - w[i].first;
		ASSERT_EQ(0, pthread_create(&w[i].tid, NULL, fault_worker, &w[i]));
	}
	for (i = 0; i < bc->nr_threads; i++) {
		pthread_join(w[i].tid, NULL);
		if (!i || ts_ns(&w[i].t0) < t0)
			t0 = ts_ns(&w[i].t0);
		if (ts_ns(&w[i].t1) > t1)
			t1 = ts_ns(&w[i].t1);
		cpu_ns += ts_ns(&w[i].cpu1) - ts_ns(&w[i].cpu0);
		minflt += w[i].minflt;
		majflt += w[i].majflt;
	}
	if (bc->writer)
		pthread_join(writer, NULL);
	pthread_barrier_destroy(&bc->barrier);
	ns = t1 - t0;

	ASSERT_GE((minflt + majflt) * 10, (long)opt_pages * 9)
		TH_LOG("rep=%d: kernel counted %ld faults for %lu pages (< 90%%)",
		       rep, minflt + majflt, opt_pages);
	bad = first_bad_page(bc->area, opt_pages, bc->kind != K_ANON);
	ASSERT_EQ(-1, bad)
		TH_LOG("rep=%d: first bad page %ld: %#lx..%#lx, want %#lx", rep,
		       bad, *(unsigned long *)(bc->area + bad * page_size),
		       *(unsigned long *)(bc->area + (bad + 1) * page_size - 8),
		       PATTERN(bad));

	if (rep >= 0)
		ksft_print_msg("bench kind=%s threads=%d writer=%d rep=%d pages=%lu faults=%ld majflt=%ld ns=%ld ns_per_fault=%.1f cpu_ns=%ld writer_ops=%lu\n",
			       kind_name[bc->kind], bc->nr_threads, bc->writer,
			       rep, opt_pages, minflt + majflt, majflt, ns,
			       (double)ns / opt_pages, cpu_ns,
			       bc->writer_ops);
	if (bc->kind != K_FILE)
		munmap(bc->area, opt_pages * page_size);
}

/* uffd: open the userfaultfd and start its handler thread. */
static void uffd_start(struct __test_metadata *_metadata, struct bench_case *bc)
{
	int fd = uffd_open_api(O_CLOEXEC | O_NONBLOCK, 0);

	if (fd < 0)
		SKIP(return, "userfaultfd unavailable: %s", strerror(-fd));
	bc->uffd = fd;
	bc->uffd_src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bc->uffd_src) TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, pipe2(bc->stop_pipe, O_CLOEXEC)) TH_LOG("pipe2: %s", strerror(errno));
	ASSERT_EQ(0, pthread_create(&bc->handler, NULL, uffd_handler, bc));
}

/*
 * file: mount a ramfs over RAMFS_DIR in a mount namespace of the case's
 * own, write the file page by page and map it. The mount, and the file
 * with it, go with the case's process however that ends, and nothing
 * outside it sees them.
 */
static void ramfs_start(struct __test_metadata *_metadata, struct bench_case *bc)
{
	unsigned long i;
	char *buf;

	if (unshare(CLONE_NEWNS))
		SKIP(return, "no mount namespace for the ramfs: unshare: %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		SKIP(return, "cannot make / private for the ramfs: %s", strerror(errno));
	if (mount("none", RAMFS_DIR, "ramfs", 0, NULL))
		SKIP(return, "mount ramfs on %s: %s", RAMFS_DIR, strerror(errno));
	bc->file_fd = open(RAMFS_FILE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_GE(bc->file_fd, 0) TH_LOG("%s: %s", RAMFS_FILE, strerror(errno));
	buf = calloc(1, page_size);
	ASSERT_NE(NULL, buf);
	for (i = 0; i < opt_pages; i++) {
		fill_page(buf, i);
		ASSERT_EQ(page_size, write(bc->file_fd, buf, page_size))
			TH_LOG("write %s: %s", RAMFS_FILE, strerror(errno));
	}
	free(buf);
	bc->file_map = mmap(NULL, opt_pages * page_size, PROT_READ, MAP_SHARED,
			    bc->file_fd, 0);
	ASSERT_NE(MAP_FAILED, bc->file_map) TH_LOG("mmap %s: %s", RAMFS_FILE, strerror(errno));
}

/* The setup of every case: what its kind needs beyond one repeat. */
static void bench_setup(struct __test_metadata *_metadata, struct bench_case *bc,
			int kind, int nr_threads, bool writer)
{
	bc->md = _metadata;
	bc->kind = kind;
	bc->nr_threads = nr_threads;
	bc->writer = writer;
	bc->uffd = -1;
	bc->file_fd = -1;
	switch (kind) {
	case K_SWAPIN:
		if (!swap_active())
			SKIP(return, "no swap active (/proc/swaps has no entry)");
		break;
	case K_UFFD:
		uffd_start(_metadata, bc);
		break;
	case K_FILE:
		ramfs_start(_metadata, bc);
		break;
	}
}

/* Stop the uffd handler, release what bench_setup() took. */
static void bench_teardown(struct __test_metadata *_metadata, struct bench_case *bc)
{
	if (bc->uffd >= 0) {
		if (write(bc->stop_pipe[1], "", 1) == 1)
			pthread_join(bc->handler, NULL);
		close(bc->stop_pipe[0]);
		close(bc->stop_pipe[1]);
		close(bc->uffd);
		munmap(bc->uffd_src, page_size);
	}
	if (bc->file_fd >= 0) {
		munmap(bc->file_map, opt_pages * page_size);
		close(bc->file_fd);	/* the mount goes with the namespace */
	}
}

/* Every case: the warm-up, then opt_repeats measured repeats. */
static void bench_run(struct __test_metadata *_metadata, struct bench_case *bc)
{
	int rep;

	for (rep = -1; rep < opt_repeats; rep++)
		run_repeat(_metadata, bc, rep);
}

/*
 * One fixture per fault kind, named after it, with the four variants of
 * threads and writer; its one case is "bench".
 */
#define FAULT_KIND(name, kind)						\
	FIXTURE(name) {							\
		struct bench_case bc;					\
	};								\
	FIXTURE_VARIANT(name) {						\
		int nr_threads;						\
		bool writer;						\
	};								\
	FIXTURE_VARIANT_ADD(name, threads1) { 1, false };		\
	FIXTURE_VARIANT_ADD(name, threads1_writer) { 1, true };		\
	FIXTURE_VARIANT_ADD(name, threads2) { 2, false };		\
	FIXTURE_VARIANT_ADD(name, threads2_writer) { 2, true };		\
	FIXTURE_SETUP(name)						\
	{								\
		bench_setup(_metadata, &self->bc, kind,			\
			    variant->nr_threads, variant->writer);	\
	}								\
	FIXTURE_TEARDOWN(name)						\
	{								\
		bench_teardown(_metadata, &self->bc);			\
	}								\
	TEST_F(name, bench)						\
	{								\
		bench_run(_metadata, &self->bc);			\
	}

FAULT_KIND(anon, K_ANON)
FAULT_KIND(swapin, K_SWAPIN)
FAULT_KIND(uffd, K_UFFD)
FAULT_KIND(file, K_FILE)

/*
 * The harness kills a case that runs past its timeout and reports it
 * "not ok". TEST_F_TIMEOUT() takes a constant, fixed when the case
 * registers, before main() has read -p and -r; so main() sets every case's
 * timeout from them: 60 s plus 5 ms for each page a repeat faults or the
 * writer populates, for the warm-up and each measured repeat. The 16 smoke
 * cases (-q) take about 2 s together under TCG, 0.25 ms a faulted page
 * at most, setup included: 5 ms is 20 times that. That gives -q 103 s a
 * case (the guest allows the whole program 300 s) and the default run
 * (4096 pages, 5 repeats) 305 s a case; `make bench` allows the whole
 * program 3000 s, so a case that hangs there may be ended by the guest's
 * timeout first, but a benchmark that runs is never ended by the harness.
 */
static void set_timeouts(void)
{
	harness_set_timeout(NULL, 60 + (opt_pages + WRITER_PAGES) * (opt_repeats + 1UL) * 5 / 1000);
}

static void __noreturn usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-p PAGES] [-r REPEATS] [-k KIND[,KIND...]] [-q] [-- HARNESS OPTIONS]\n"
		"  -p  pages faulted per repeat (default 4096)\n"
		"  -r  measured repeats per case (default 5)\n"
		"  -k  kinds among anon,swapin,uffd,file (default all)\n"
		"  -q  smoke run: 256 pages, 1 repeat\n"
		"after --, kselftest_harness options: -l lists the cases (KIND.VARIANT.bench),\n"
		"-r NAME runs one, -h tells the others\n", prog);
	exit(KSFT_FAIL);
}

/* Parse a comma separated list of kind names into a bit mask. */
static unsigned int parse_kinds(char *list, const char *prog)
{
	unsigned int mask = 0;
	char *tok;
	int k;

	for (tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		for (k = 0; k < NR_KINDS && strcmp(tok, kind_name[k]); k++)
			;
		if (k == NR_KINDS)
			usage(prog);
		mask |= 1U << k;
	}
	if (!mask)
		usage(prog);
	return mask;
}

int main(int argc, char **argv)
{
	static const int fatal_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };
	char **hargv = calloc(argc + 2 * NR_KINDS + 1, sizeof(*hargv));
	unsigned int kinds = (1U << NR_KINDS) - 1;
	int opt, kind, hargc = 0;
	bool quick = false;
	const char *fab;
	unsigned int i;
	char *end;

	/*
	 * Line-buffered even into a pipe: a case's process ends with _exit()
	 * or abort(), which would lose what stdio still held.
	 */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* "+": stop at the first argument that is not an option, or "--". */
	while ((opt = getopt(argc, argv, "+p:r:k:q")) != -1) {
		switch (opt) {
		case 'p':
			opt_pages = strtoul(optarg, &end, 0);
			if (*end || opt_pages < MAX_THREADS)
				usage(argv[0]);
			break;
		case 'r':
			opt_repeats = strtol(optarg, &end, 0);
			if (*end || opt_repeats < 1)
				usage(argv[0]);
			break;
		case 'k':
			kinds = parse_kinds(optarg, argv[0]);
			break;
		case 'q':
			quick = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		usage(argv[0]);
	if (!opt_pages)
		opt_pages = quick ? 256 : 4096;
	if (!opt_repeats)
		opt_repeats = quick ? 1 : 5;
	if (!hargv)
		ksft_exit_fail_msg("calloc failed\n");
	page_size = psize();
	main_pid = getpid();
	set_timeouts();

	/*
	 * The harness's arguments: -F for each kind -k left out, first, so
	 * that it excludes that kind's cases whatever follows; then those
	 * after "--".
	 */
	hargv[hargc++] = argv[0];
	for (kind = 0; kind < NR_KINDS; kind++) {
		if (kinds & (1U << kind))
			continue;
		hargv[hargc++] = "-F";
		hargv[hargc++] = (char *)kind_name[kind];
	}
	while (optind < argc)
		hargv[hargc++] = argv[optind++];
	hargv[hargc] = NULL;

	if (atexit(restore_fault_around))
		ksft_exit_fail_msg("atexit failed\n");
	for (i = 0; i < ARRAY_SIZE(fatal_sigs); i++)
		sigaction(fatal_sigs[i], &sa, NULL);
	fab = set_fault_around();
	ksft_print_msg("bench config pages=%lu repeats=%d fault_around_bytes=%s cpus=%ld\n",
		       opt_pages, opt_repeats, fab, sysconf(_SC_NPROCESSORS_ONLN));

	optind = 0;	/* glibc: the harness's getopt() starts afresh */
	return test_harness_run(hargc, hargv);
}
