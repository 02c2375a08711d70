// SPDX-License-Identifier: GPL-2.0
/*
 * fault_bench - cost per page fault of four fault kinds, to compare kernels
 * that differ only in how the page-fault lock protocol is implemented.
 *
 *  anon    first-touch write faults on private anonymous memory
 *  swapin  read faults on private anon pages pushed out with MADV_PAGEOUT
 *  uffd    read faults on a MISSING-registered range, each resolved by a
 *          handler thread with one UFFDIO_COPY (a full round trip)
 *  file    read faults on a MAP_SHARED mapping of a file on our own ramfs,
 *          with fault_around_bytes set to one page if debugfs has it
 *
 * Each kind runs with 1 or 2 faulting threads (each faults its own part of
 * the range, released together by a barrier) and with the "writer" off or
 * on: a thread that, during the whole timed section, loops mprotect() of a
 * populated shared mapping of WRITER_PAGES pages of its own between
 * read-only and read-write, as a runtime's garbage collector might. Each
 * mprotect() holds mmap_lock for write across a walk of the mapping's page
 * table, so a fault that needs mmap_lock queues behind it; the mapping is
 * shared so that it never merges with a faulted range. Each case runs one untimed
 * warm-up repeat, then R measured ones, each printed as one "# bench" line.
 * Two times are printed: ns, CLOCK_MONOTONIC from barrier release to the
 * last faulting thread done, and cpu_ns, the faulting threads' own CPU
 * time (CLOCK_THREAD_CPUTIME_ID) in their timed loops, summed. Under QEMU
 * -icount shift=0 with one vCPU both count instructions: ns all of them,
 * cpu_ns those of the faulting threads, which is where the fault path
 * runs (the uffd handler's UFFDIO_COPY and the writer's mprotect() are
 * not in it). The uffd handler runs SCHED_FIFO, so that each round trip
 * takes the same way through the scheduler.
 *
 * A case fails if the kernel counted (RUSAGE_THREAD minflt + majflt of the
 * faulting threads) fewer faults than 90% of the pages touched, if fewer
 * than 90% of the pages were really swapped out (swapin), or if any page
 * does not hold the expected content afterwards. The reason names the
 * repeat (rep=-1 is the warm-up) and the first bad page.
 *
 * Usage: fault_bench [-p PAGES] [-r REPEATS] [-k KIND[,KIND...]] [-q]
 */
#define _GNU_SOURCE
#include <fcntl.h>
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
#include <sys/syscall.h>
#include <time.h>
#include <linux/userfaultfd.h>

#include "kselftest.h"
#include "guest_util.h"

#define MAX_THREADS	2
/* The writer's mapping: 16 MiB of 4 KiB pages, whose walk takes ~0.1 ms+. */
#define WRITER_PAGES	4096
#define FAB_PATH	"/sys/kernel/debug/fault_around_bytes"
/* Page @i holds this at offset 0 (and at its last 8 bytes, except anon). */
#define PATTERN(i)	(0xfb00000000000000UL | (unsigned long)(i))
/* One access per page that the compiler can neither drop nor merge. */
#define READ_ONCE(x)	(*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

enum { K_ANON, K_SWAPIN, K_UFFD, K_FILE, NR_KINDS };
static const char * const kind_name[NR_KINDS] = {
	"anon", "swapin", "uffd", "file"
};

static long page_size;
static unsigned long opt_pages;
static int opt_repeats;
static unsigned int opt_kinds = (1U << NR_KINDS) - 1;

/* State undone at exit (cleanup()) or on a fatal signal (on_signal()). */
static char fab_old[32];
static bool fab_changed;
static char ramfs_dir[] = "/tmp/fault_bench.XXXXXX";
static char file_path[sizeof(ramfs_dir) + 8];
static bool ramfs_made, ramfs_mounted;
static int file_fd = -1;
static char *file_map;
static int file_status = -1;	/* -1: not set up yet, else a KSFT_ code */
static char file_why[128];

/* One case: a kind, a thread count and the writer setting. */
struct bench_case {
	int kind;
	int nr_threads;
	bool writer;
	char *area;			/* the range faulted in this repeat */
	pthread_barrier_t barrier;
	int running;			/* faulting threads not done yet */
	int writer_stop;
	unsigned long writer_ops;
	int uffd;
	int stop_pipe[2];		/* tells the uffd handler to exit */
	char *uffd_src;			/* one page, the UFFDIO_COPY source */
	pthread_t handler;
	char why[160];			/* why the case failed or skipped */
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

/* Record why @bc failed; returns -1 so callers can "return fail(...)". */
static __printf(2, 3) int fail(struct bench_case *bc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(bc->why, sizeof(bc->why), fmt, ap);
	va_end(ap);
	return -1;
}

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

/* atexit(): restore fault_around_bytes, remove the ramfs file and mount. */
static void cleanup(void)
{
	if (fab_changed && write_str(FAB_PATH, fab_old))
		printf("# could not restore %s to %s\n", FAB_PATH, fab_old);
	if (file_map)
		munmap(file_map, opt_pages * page_size);
	if (file_fd >= 0) {
		close(file_fd);
		unlink(file_path);
	}
	if (ramfs_mounted && umount2(ramfs_dir, 0) && umount2(ramfs_dir, MNT_DETACH))
		printf("# could not unmount %s: %s\n", ramfs_dir, strerror(errno));
	if (ramfs_made)
		rmdir(ramfs_dir);
}

/* SIGINT/TERM/HUP/PIPE: undo with async-signal-safe calls only, then die. */
static void on_signal(int sig)
{
	if (fab_changed)
		write_str(FAB_PATH, fab_old);
	if (ramfs_mounted)
		umount2(ramfs_dir, MNT_DETACH);	/* the file goes with the mm */
	if (ramfs_made)
		rmdir(ramfs_dir);
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
static int map_anon(struct bench_case *bc)
{
	size_t len = opt_pages * page_size;

	bc->area = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bc->area == MAP_FAILED) {
		bc->area = NULL;
		return fail(bc, "mmap: %s", strerror(errno));
	}
	if (madvise(bc->area, len, MADV_NOHUGEPAGE))
		return fail(bc, "MADV_NOHUGEPAGE: %s", strerror(errno));
	return 0;
}

/* Fill the range, page it out and check in pagemap that >= 90% is out. */
static int prepare_swapin(struct bench_case *bc)
{
	size_t len = opt_pages * page_size;
	unsigned long i, out = 0;
	uint64_t *pm;
	ssize_t n;
	int fd;

	for (i = 0; i < opt_pages; i++)
		fill_page(bc->area + i * page_size, i);
	if (madvise(bc->area, len, MADV_PAGEOUT))
		return fail(bc, "MADV_PAGEOUT: %s", strerror(errno));

	pm = calloc(opt_pages, sizeof(*pm));
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (!pm || fd < 0) {
		free(pm);
		return fail(bc, "pagemap: %s", strerror(errno));
	}
	n = pread(fd, pm, opt_pages * sizeof(*pm),
		  (uintptr_t)bc->area / page_size * sizeof(*pm));
	close(fd);
	if (n != (ssize_t)(opt_pages * sizeof(*pm))) {
		free(pm);
		return fail(bc, "pagemap read: %s", n < 0 ? strerror(errno) : "short");
	}
	for (i = 0; i < opt_pages; i++)
		out += !!(pm[i] & (1ULL << 62));	/* bit 62: swapped */
	free(pm);
	if (out * 10 < opt_pages * 9)
		return fail(bc, "only %lu of %lu pages swapped out by MADV_PAGEOUT",
			    out, opt_pages);
	return 0;
}

/* Register the fresh range with the case's userfaultfd for MISSING faults. */
static int register_uffd(struct bench_case *bc)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)bc->area, opt_pages * page_size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(bc->uffd, UFFDIO_REGISTER, &reg))
		return fail(bc, "UFFDIO_REGISTER: %s", strerror(errno));
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)))
		return fail(bc, "UFFDIO_COPY not offered for the range");
	return 0;
}

/* Open a userfaultfd (syscall, else /dev/userfaultfd); -errno on failure. */
static int uffd_open(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd, dev, err;

	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		err = errno;
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return -err;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		err = errno;
		close(dev);
		if (fd < 0)
			return -err;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
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
		ksft_exit_fail_msg("UFFDIO_COPY at %#lx: %s\n", dst, strerror(errno));
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

	/*
	 * Run before any faulting thread as soon as a fault wakes us, so that
	 * every round trip takes the same way through the scheduler: with
	 * both threads in the fair class, whether the faulting thread sleeps
	 * before its fault is resolved changes from repeat to repeat, and
	 * with it the instructions per fault by up to 20%.
	 */
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp))
		ksft_exit_fail_msg("uffd handler: SCHED_FIFO: %s\n",
				   strerror(errno));
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ksft_exit_fail_msg("uffd poll: %s\n", strerror(errno));
		}
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents & (POLLERR | POLLHUP))
			ksft_exit_fail_msg("uffd poll: revents %#x\n", pfd[0].revents);
		if (read(bc->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN)
				continue;
			ksft_exit_fail_msg("uffd read: %s\n", strerror(errno));
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			ksft_exit_fail_msg("unexpected uffd event %u\n", msg.event);
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
		ksft_exit_fail_msg("writer mmap: %s\n", strerror(errno));
	for (i = 0; i < WRITER_PAGES; i++)
		WRITE_ONCE(p[i * page_size], 1);
	pthread_barrier_wait(&bc->barrier);
	while (!__atomic_load_n(&bc->writer_stop, __ATOMIC_ACQUIRE)) {
		if (mprotect(p, len, ops & 1 ? PROT_READ | PROT_WRITE : PROT_READ))
			ksft_exit_fail_msg("writer mprotect: %s\n",
					   strerror(errno));
		ops++;
	}
	munmap(p, len);
	bc->writer_ops = ops;
	return NULL;
}

/* Prepare the range for one repeat (untimed). */
static int prepare_repeat(struct bench_case *bc)
{
	switch (bc->kind) {
	case K_ANON:
		return map_anon(bc);
	case K_SWAPIN:
		return map_anon(bc) ?: prepare_swapin(bc);
	case K_UFFD:
		return map_anon(bc) ?: register_uffd(bc);
	default:
		bc->area = file_map;
		if (madvise(bc->area, opt_pages * page_size, MADV_DONTNEED))
			return fail(bc, "MADV_DONTNEED: %s", strerror(errno));
		return 0;
	}
}

/*
 * Run one repeat of @bc: prepare, fault with all threads, check counts and
 * content, print the bench line if @rep >= 0 (not the warm-up).
 */
static int run_repeat(struct bench_case *bc, int rep)
{
	struct worker w[MAX_THREADS] = {};
	long t0 = 0, t1 = 0, cpu_ns = 0, minflt = 0, majflt = 0, ns, bad;
	pthread_t writer;
	int i, ret;

	bc->area = NULL;
	ret = prepare_repeat(bc);
	if (ret)
		goto out;

	bc->running = bc->nr_threads;
	bc->writer_stop = 0;
	bc->writer_ops = 0;
	if (pthread_barrier_init(&bc->barrier, NULL, bc->nr_threads + bc->writer))
		ksft_exit_fail_msg("pthread_barrier_init failed\n");
	if (bc->writer && pthread_create(&writer, NULL, writer_thread, bc))
		ksft_exit_fail_msg("pthread_create failed\n");
	for (i = 0; i < bc->nr_threads; i++) {
		w[i].bc = bc;
		w[i].first = opt_pages * i / bc->nr_threads;
		w[i].nr = opt_pages * (i + 1) / bc->nr_threads - w[i].first;
		if (pthread_create(&w[i].tid, NULL, fault_worker, &w[i]))
			ksft_exit_fail_msg("pthread_create failed\n");
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

	ret = -1;
	bad = first_bad_page(bc->area, opt_pages, bc->kind != K_ANON);
	if ((minflt + majflt) * 10 < (long)opt_pages * 9)
		fail(bc, "rep=%d: kernel counted %ld faults for %lu pages (< 90%%)",
		     rep, minflt + majflt, opt_pages);
	else if (bad >= 0)
		fail(bc, "rep=%d: first bad page %ld: %#lx..%#lx, want %#lx", rep,
		     bad, *(unsigned long *)(bc->area + bad * page_size),
		     *(unsigned long *)(bc->area + (bad + 1) * page_size - 8),
		     PATTERN(bad));
	else
		ret = 0;

	if (!ret && rep >= 0)
		ksft_print_msg("bench kind=%s threads=%d writer=%d rep=%d pages=%lu faults=%ld majflt=%ld ns=%ld ns_per_fault=%.1f cpu_ns=%ld writer_ops=%lu\n",
			       kind_name[bc->kind], bc->nr_threads, bc->writer,
			       rep, opt_pages, minflt + majflt, majflt, ns,
			       (double)ns / opt_pages, cpu_ns,
			       bc->writer_ops);
out:
	if (bc->area && bc->kind != K_FILE)
		munmap(bc->area, opt_pages * page_size);
	return ret;
}

/* Mount ramfs, write the file page by page and map it; once per run. */
static int file_setup(void)
{
	char *buf;
	unsigned long i;

	if (!mkdtemp(ramfs_dir)) {
		snprintf(file_why, sizeof(file_why), "mkdtemp: %s", strerror(errno));
		return KSFT_SKIP;
	}
	ramfs_made = true;
	if (mount("none", ramfs_dir, "ramfs", 0, NULL)) {
		snprintf(file_why, sizeof(file_why), "mount ramfs: %s", strerror(errno));
		return KSFT_SKIP;
	}
	ramfs_mounted = true;
	snprintf(file_path, sizeof(file_path), "%s/data", ramfs_dir);
	file_fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	buf = calloc(1, page_size);
	if (file_fd < 0 || !buf)
		goto err;
	for (i = 0; i < opt_pages; i++) {
		fill_page(buf, i);
		if (write(file_fd, buf, page_size) != page_size)
			goto err;
	}
	free(buf);
	file_map = mmap(NULL, opt_pages * page_size, PROT_READ, MAP_SHARED,
			file_fd, 0);
	if (file_map != MAP_FAILED)
		return KSFT_PASS;
	file_map = NULL;
err:
	snprintf(file_why, sizeof(file_why), "file setup: %s", strerror(errno));
	free(buf);
	return KSFT_FAIL;
}

/* Set up what a case of @bc->kind needs beyond one repeat; KSFT_ code. */
static int case_setup(struct bench_case *bc)
{
	int fd;

	switch (bc->kind) {
	case K_SWAPIN:
		if (!swap_active()) {
			fail(bc, "no swap active (/proc/swaps has no entry)");
			return KSFT_SKIP;
		}
		return KSFT_PASS;
	case K_UFFD:
		fd = uffd_open();
		if (fd < 0) {
			fail(bc, "userfaultfd unavailable: %s", strerror(-fd));
			return KSFT_SKIP;
		}
		bc->uffd = fd;
		bc->uffd_src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (bc->uffd_src == MAP_FAILED || pipe2(bc->stop_pipe, O_CLOEXEC) ||
		    pthread_create(&bc->handler, NULL, uffd_handler, bc))
			ksft_exit_fail_msg("uffd handler setup failed\n");
		return KSFT_PASS;
	case K_FILE:
		if (file_status < 0)
			file_status = file_setup();
		snprintf(bc->why, sizeof(bc->why), "%s", file_why);
		return file_status;
	default:
		return KSFT_PASS;
	}
}

/* Stop the uffd handler and release what case_setup() took. */
static void case_teardown(struct bench_case *bc)
{
	if (bc->kind != K_UFFD)
		return;
	if (write(bc->stop_pipe[1], "", 1) != 1)
		ksft_exit_fail_msg("stop pipe: %s\n", strerror(errno));
	pthread_join(bc->handler, NULL);
	close(bc->stop_pipe[0]);
	close(bc->stop_pipe[1]);
	close(bc->uffd);
	munmap(bc->uffd_src, page_size);
}

/* Run one case: warm-up plus opt_repeats measured repeats; TAP result. */
static void run_case(int kind, int nr_threads, bool writer)
{
	struct bench_case bc = {
		.kind = kind, .nr_threads = nr_threads, .writer = writer,
	};
	char name[64];
	int rep, ret;

	snprintf(name, sizeof(name), "kind=%s threads=%d writer=%d",
		 kind_name[kind], nr_threads, writer);
	ret = case_setup(&bc);
	if (ret == KSFT_SKIP) {
		ksft_test_result_skip("%s: %s\n", name, bc.why);
		return;
	}
	for (rep = -1; ret == KSFT_PASS && rep < opt_repeats; rep++)
		if (run_repeat(&bc, rep))
			ret = KSFT_FAIL;
	if (ret == KSFT_PASS)
		ksft_test_result_pass("%s\n", name);
	else
		ksft_test_result_fail("%s: %s\n", name, bc.why);
	case_teardown(&bc);
}

static void __noreturn usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-p PAGES] [-r REPEATS] [-k KIND[,KIND...]] [-q]\n"
		"  -p  pages faulted per repeat (default 4096)\n"
		"  -r  measured repeats per case (default 5)\n"
		"  -k  kinds among anon,swapin,uffd,file (default all)\n"
		"  -q  smoke run: 256 pages, 1 repeat\n", prog);
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
	bool quick = false;
	const char *fab;
	unsigned int i;
	char *end;
	int opt, kind, threads, writer, nr_kinds = 0;

	while ((opt = getopt(argc, argv, "p:r:k:q")) != -1) {
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
			opt_kinds = parse_kinds(optarg, argv[0]);
			break;
		case 'q':
			quick = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind != argc)
		usage(argv[0]);
	if (!opt_pages)
		opt_pages = quick ? 256 : 4096;
	if (!opt_repeats)
		opt_repeats = quick ? 1 : 5;
	page_size = sysconf(_SC_PAGESIZE);

	ksft_print_header();
	for (kind = 0; kind < NR_KINDS; kind++)
		nr_kinds += !!(opt_kinds & (1U << kind));
	ksft_set_plan(nr_kinds * 4);
	if (atexit(cleanup))
		ksft_exit_fail_msg("atexit failed\n");
	for (i = 0; i < ARRAY_SIZE(fatal_sigs); i++)
		sigaction(fatal_sigs[i], &sa, NULL);
	fab = set_fault_around();
	ksft_print_msg("bench config pages=%lu repeats=%d fault_around_bytes=%s cpus=%ld\n",
		       opt_pages, opt_repeats, fab, sysconf(_SC_NPROCESSORS_ONLN));

	for (kind = 0; kind < NR_KINDS; kind++) {
		if (!(opt_kinds & (1U << kind)))
			continue;
		for (threads = 1; threads <= MAX_THREADS; threads++)
			for (writer = 0; writer <= 1; writer++)
				run_case(kind, threads, writer);
	}
	ksft_finished();
}
