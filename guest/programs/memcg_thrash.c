// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_thrash - threads cycle a working set larger than their memory
 * cgroup's memory.max, so that their pages go to swap and come back the way
 * they do on a user's loaded machine, while one thread takes mmap_lock for
 * writing and another forks. Every page's content is checked.
 *
 *   memcg_thrash [-t SECONDS] [-j THREADS] [-w MIB] [-m MIB] [-f MS] [-s SEED] [-- HARNESS OPTIONS]
 *
 * The model is the memcg-thrash one of the per-VMA lock retry discussions
 * (linux-mm, 2025-2026): a round is one pass of a thread over its slice of
 * the working set, reading each page's tag, checking it and writing the
 * next one. With swap on a disk, a fault on a page that left memory waits
 * for its read, which is where a fault under the per-VMA lock drops the
 * lock and retries. Each thread first writes its whole slice once, so
 * that the measured rounds start with the working set above the limit;
 * that pass is neither timed nor counted.
 *
 * Output is kselftest TAP (kselftest_harness.h) with one case,
 * "memcg.thrash": it passes when every page read back held what was last
 * written to it, every faulting thread got on after its fill, pages came
 * back from swap, and the writer and the forker ran. It skips, saying
 * why, without swap (the cgroup could only OOM-kill) or where it cannot
 * make and join a memory cgroup. Comment lines give the run's seed and
 * what a benchmark reads (lab/src/thrash.rs; rounds count passes over a
 * slice, fractions included):
 *
 *   # seed S: T threads cycle W MiB under memory.max M MiB for N s, a fork every F ms
 *   # swap on DEVICE
 *   # rounds N in S s: R rounds/s
 *   # access latency us: p50 A p90 B p99 C max D (N accesses)
 *   # fork latency us: p50 A p90 B p99 C max D (N forks)
 *   # mmap_lock writer: N map/unmap pairs
 *   # vmstat: pswpin +N pswpout +N vma_lock_success +N ... (system-wide)
 *
 * The vmstat line names only the counters the kernel has: the per-VMA lock
 * ones need CONFIG_PER_VMA_LOCK_STATS, and vma_lock_retry_vma (faults
 * retried under the per-VMA lock after their handler dropped it to wait)
 * and vma_lock_retry_success (of those, the ones that completed there)
 * come with the retry under the per-VMA lock.
 *
 * The memory cgroup, memcg_thrash.PID (PID: the program's, not the case's)
 * under the cgroup2 mount, is made and joined by the case's process
 * (memory.max MIB, swap unlimited), left and removed when the case ends;
 * the program removes it at exit if the case could not (the harness killed
 * it at its timeout). The harness's own options (-l to list, -r NAME to
 * run one, ...) go after "--": -t and -f before it are this program's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "vm_util.h"
#include "guest_util.h"

#define MAX_THREADS	16

/* Set by main() before the harness runs the case; read-only in it. */
static long page_size;
static int opt_seconds = 10, opt_threads = 2, opt_fork_ms = 200;
static unsigned long opt_ws_mib = 48, opt_max_mib = 16;
static uint64_t opt_seed;
static pid_t main_pid;

static atomic_bool stop;
static atomic_ulong mismatches;

/*
 * A latency histogram: 4 sub-buckets per power of two of nanoseconds, so
 * that a percentile is within 25% of the truth, in fixed memory.
 */
#define HIST_BUCKETS	(64 * 4)

struct hist {
	unsigned long n[HIST_BUCKETS];
	unsigned long count, max_ns;
};

static void hist_add(struct hist *h, unsigned long ns)
{
	int log = ns ? 63 - __builtin_clzl(ns) : 0;
	int sub = log >= 2 ? (ns >> (log - 2)) & 3 : 0;

	h->n[log * 4 + sub]++;
	h->count++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	for (int i = 0; i < HIST_BUCKETS; i++)
		to->n[i] += from->n[i];
	to->count += from->count;
	if (from->max_ns > to->max_ns)
		to->max_ns = from->max_ns;
}

/* The upper edge of bucket i, in microseconds. */
static double bucket_top_us(int i)
{
	int log = i / 4, sub = i % 4;

	if (log < 2)
		return (double)(2UL << log) / 1000.0;
	return (double)(1UL << log) * (5 + sub) / 4 / 1000.0;
}

/*
 * The upper edge, in microseconds, of the bucket holding percentile p, or
 * the largest value if that is lower: a percentile is never above the max.
 */
static double hist_pct(const struct hist *h, double p)
{
	unsigned long want = (unsigned long)(h->count * p / 100.0), seen = 0;
	double max_us = h->max_ns / 1000.0;

	for (int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen > want)
			return bucket_top_us(i) < max_us ? bucket_top_us(i) : max_us;
	}
	return max_us;
}

static void hist_print(const char *what, const struct hist *h, const char *unit)
{
	ksft_print_msg("%s latency us: p50 %.1f p90 %.1f p99 %.1f max %.1f (%lu %s)\n",
		       what, hist_pct(h, 50), hist_pct(h, 90), hist_pct(h, 99),
		       h->max_ns / 1000.0, h->count, unit);
}

static unsigned long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000UL + ts.tv_nsec;
}

/* A page's tag: who owns it, which page, which version; never zero. */
static uint64_t tag(int thread, unsigned long page, unsigned long version)
{
	return (opt_seed ^ ((uint64_t)thread << 56) ^ ((uint64_t)page << 24) ^ version) | 1;
}

struct worker {
	pthread_t tid;
	int id;
	char *slice;
	unsigned long pages;
	unsigned long *version;	/* per page, the version last written */
	struct hist lat;	/* one entry per page accessed after the fill */
};

/* The threads start their timed rounds together, once all have filled. */
static pthread_barrier_t filled;

/*
 * One round after another over the slice: each page's first word is read
 * and checked, then the next version written to its first and last words.
 * The access is timed: most take nanoseconds, a fault that reads swap
 * milliseconds.
 */
static void *work(void *arg)
{
	struct worker *w = arg;
	size_t words = page_size / sizeof(uint64_t);

	for (unsigned long i = 0; i < w->pages; i++) {
		uint64_t *p = (uint64_t *)(w->slice + i * page_size);

		w->version[i] = 1;
		p[0] = p[words - 1] = tag(w->id, i, 1);
	}
	pthread_barrier_wait(&filled);
	while (!atomic_load(&stop)) {
		for (unsigned long i = 0; i < w->pages && !atomic_load(&stop); i++) {
			volatile uint64_t *p = (uint64_t *)(w->slice + i * page_size);
			uint64_t want = tag(w->id, i, w->version[i]);
			unsigned long t0 = now_ns();
			uint64_t first = p[0];

			hist_add(&w->lat, now_ns() - t0);
			if (first != want || p[words - 1] != want) {
				if (atomic_fetch_add(&mismatches, 1) < 8)
					ksft_print_msg("thread %d page %lu: %#llx, expected %#llx (version %lu)\n",
						       w->id, i, (unsigned long long)first,
						       (unsigned long long)want, w->version[i]);
			}
			w->version[i]++;
			p[0] = p[words - 1] = tag(w->id, i, w->version[i]);
		}
	}
	return NULL;
}

/* Takes mmap_lock for writing, about a thousand times a second. */
static void *writer(void *arg)
{
	unsigned long *ops = arg;
	struct timespec ms = { 0, 1000000 };

	while (!atomic_load(&stop)) {
		void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED) {
			munmap(p, page_size);
			(*ops)++;
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/*
 * Forks every opt_fork_ms: fork() write-locks each VMA of the parent, so
 * its latency shows how long the faulting threads' VMA locks hold it up.
 * The child exits at once.
 */
static void *forker(void *arg)
{
	struct hist *h = arg;
	struct timespec pause = { opt_fork_ms / 1000, (opt_fork_ms % 1000) * 1000000L };

	while (!atomic_load(&stop)) {
		unsigned long t0 = now_ns();
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid > 0) {
			hist_add(h, now_ns() - t0);
			waitpid(pid, NULL, 0);
		}
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static int put_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f)
		return -1;
	if (fputs(s, f) < 0)
		ret = -1;
	if (fclose(f))
		ret = -1;
	return ret;
}

/* Where cgroup2 is mounted, into @mnt; false if it is not. */
static bool cgroup2_mount(char *mnt, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	bool found = false;

	while (f && !found && (m = getmntent(f))) {
		if (!strcmp(m->mnt_type, "cgroup2")) {
			snprintf(mnt, len, "%s", m->mnt_dir);
			found = true;
		}
	}
	if (f)
		endmntent(f);
	return found;
}

/* The memory cgroup the case runs in, and the one it came from. */
struct memcg_place {
	char dir[PATH_MAX];
	char home[PATH_MAX];
};

FIXTURE(memcg) {
	struct memcg_place cg;
};

/*
 * Makes and joins a memory cgroup with memory.max MIB; NULL, or why it
 * could not, with errno that of the call that failed (0 if none did).
 */
static const char *memcg_enter(struct memcg_place *cg, unsigned long mib)
{
	char path[PATH_MAX + 32], line[PATH_MAX], mnt[PATH_MAX], max[32];
	FILE *f;

	if (!cgroup2_mount(mnt, sizeof(mnt))) {
		errno = 0;
		return "no cgroup2 mount";
	}
	f = fopen("/proc/self/cgroup", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			if (snprintf(cg->home, sizeof(cg->home), "%s%s", mnt,
				     line + 3) >= (int)sizeof(cg->home))
				cg->home[0] = '\0';
		}
	}
	if (f)
		fclose(f);
	if (!cg->home[0]) {
		errno = 0;
		return "no cgroup2 entry in /proc/self/cgroup";
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", mnt);
	if (put_file(path, "+memory"))
		return "cannot enable the memory controller";
	if (snprintf(cg->dir, sizeof(cg->dir), "%s/memcg_thrash.%d", mnt,
		     main_pid) >= (int)sizeof(cg->dir)) {
		cg->dir[0] = '\0';
		errno = 0;
		return "the cgroup's path is too long";
	}
	if (mkdir(cg->dir, 0755))
		return "cannot make the cgroup";
	snprintf(path, sizeof(path), "%s/memory.max", cg->dir);
	snprintf(max, sizeof(max), "%lu", mib << 20);
	if (put_file(path, max))
		return "cannot set memory.max";
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir);
	if (put_file(path, "0"))
		return "cannot join the cgroup";
	return NULL;
}

/* Moves the process back home and removes the cgroup. */
static void memcg_leave(struct memcg_place *cg)
{
	char path[PATH_MAX + 32];

	if (!cg->dir[0])
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg->home);
	put_file(path, "0");
	rmdir(cg->dir);
	cg->dir[0] = '\0';
}

/*
 * atexit() of main(): remove the case's cgroup if the case could not,
 * having been killed at its timeout (its processes are gone by now).
 */
static void memcg_remove(void)
{
	char mnt[PATH_MAX], dir[PATH_MAX + 32];

	if (getpid() != main_pid || !cgroup2_mount(mnt, sizeof(mnt)))
		return;
	snprintf(dir, sizeof(dir), "%s/memcg_thrash.%d", mnt, main_pid);
	if (rmdir(dir) && errno != ENOENT)
		ksft_print_msg("could not remove %s: %s\n", dir, strerror(errno));
}

static const char * const vmstat_names[] = {
	"pswpin", "pswpout", "vma_lock_success", "vma_lock_abort",
	"vma_lock_retry", "vma_lock_miss", "vma_lock_retry_vma",
	"vma_lock_retry_success",
};
#define NR_VMSTAT ARRAY_SIZE(vmstat_names)

/* Which of vmstat_names this kernel has. */
static bool vmstat_present[NR_VMSTAT];

static void read_vmstat(unsigned long *v)
{
	char name[64];
	unsigned long val;
	FILE *f = fopen("/proc/vmstat", "r");

	memset(v, 0, NR_VMSTAT * sizeof(*v));
	while (f && fscanf(f, "%63s %lu", name, &val) == 2) {
		for (size_t i = 0; i < NR_VMSTAT; i++) {
			if (!strcmp(name, vmstat_names[i])) {
				v[i] = val;
				vmstat_present[i] = true;
			}
		}
	}
	if (f)
		fclose(f);
}

/*
 * Prints the seed whatever comes of the case, then skips it without swap
 * or a memory cgroup to run in.
 */
FIXTURE_SETUP(memcg)
{
	const char *why;
	int err;

	ksft_print_msg("seed %llu: %d threads cycle %lu MiB under memory.max %lu MiB for %d s, a fork every %d ms\n",
		       (unsigned long long)opt_seed, opt_threads, opt_ws_mib, opt_max_mib,
		       opt_seconds, opt_fork_ms);
	if (!swap_active())
		SKIP(return, "no swap: the cgroup could only OOM-kill");
	why = memcg_enter(&self->cg, opt_max_mib);
	if (why) {
		err = errno;
		memcg_leave(&self->cg);
		if (err)
			SKIP(return, "%s (%s)", why, strerror(err));
		SKIP(return, "%s", why);
	}
}

FIXTURE_TEARDOWN(memcg)
{
	memcg_leave(&self->cg);
}

TEST_F(memcg, thrash)
{
	static struct worker workers[MAX_THREADS];
	unsigned long before[NR_VMSTAT], after[NR_VMSTAT], writer_ops = 0;
	unsigned long t0, pages, slice, bad;
	pthread_t writer_tid, forker_tid;
	struct hist lat = { 0 }, fork_lat = { 0 };
	char line[512] = "";
	double secs, rounds;
	char *area;
	FILE *f;

	f = fopen("/proc/swaps", "r");
	if (f && fgets(line, sizeof(line), f) && fgets(line, sizeof(line), f))
		line[strcspn(line, " \t")] = '\0';
	if (f)
		fclose(f);
	ksft_print_msg("swap on %s\n", line);

	pages = (opt_ws_mib << 20) / page_size;
	slice = pages / opt_threads;
	area = mmap(NULL, pages * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area) TH_LOG("mmap %lu MiB: %s", opt_ws_mib, strerror(errno));
	/* Huge pages would swap out whole, or be split: keep the model's pages. */
	madvise(area, pages * page_size, MADV_NOHUGEPAGE);

	ASSERT_EQ(0, pthread_barrier_init(&filled, NULL, opt_threads + 1));
	for (int i = 0; i < opt_threads; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->slice = area + i * slice * page_size;
		w->pages = slice;
		w->version = calloc(slice, sizeof(*w->version));
		ASSERT_NE(NULL, w->version) TH_LOG("thread %d: %s", i, strerror(errno));
		ASSERT_EQ(0, pthread_create(&w->tid, NULL, work, w)) TH_LOG("thread %d", i);
	}
	pthread_barrier_wait(&filled);
	read_vmstat(before);
	t0 = now_ns();
	ASSERT_EQ(0, pthread_create(&writer_tid, NULL, writer, &writer_ops));
	ASSERT_EQ(0, pthread_create(&forker_tid, NULL, forker, &fork_lat));
	sleep(opt_seconds);
	atomic_store(&stop, true);
	for (int i = 0; i < opt_threads; i++) {
		pthread_join(workers[i].tid, NULL);
		hist_merge(&lat, &workers[i].lat);
	}
	pthread_join(writer_tid, NULL);
	pthread_join(forker_tid, NULL);
	secs = (now_ns() - t0) / 1e9;
	read_vmstat(after);
	munmap(area, pages * page_size);
	memcg_leave(&self->cg);

	/* Rounds of all threads, in slices passed over: fractions count. */
	rounds = (double)lat.count / slice;
	ksft_print_msg("rounds %.2f in %.1f s: %.3f rounds/s\n", rounds, secs, rounds / secs);
	hist_print("access", &lat, "accesses");
	hist_print("fork", &fork_lat, "forks");
	ksft_print_msg("mmap_lock writer: %lu map/unmap pairs\n", writer_ops);
	line[0] = '\0';
	for (size_t i = 0; i < NR_VMSTAT; i++)
		if (vmstat_present[i])
			snprintf(line + strlen(line), sizeof(line) - strlen(line), " %s +%lu",
				 vmstat_names[i], after[i] - before[i]);
	ksft_print_msg("vmstat:%s (system-wide)\n", line);

	for (int i = 0; i < opt_threads; i++) {
		EXPECT_NE(0UL, workers[i].lat.count)
			TH_LOG("thread %d accessed no page after its fill", i);
	}
	bad = atomic_load(&mismatches);
	EXPECT_EQ(0UL, bad) TH_LOG("%lu pages read back something else than was written", bad);
	EXPECT_NE(0UL, writer_ops) TH_LOG("the writer did not run");
	EXPECT_NE(0UL, fork_lat.count) TH_LOG("the forker did not run");
	EXPECT_NE(0UL, after[0] - before[0])
		TH_LOG("no page came back from swap: memory.max did not squeeze");
}

/*
 * The harness kills a case that runs past its timeout and reports it
 * "not ok". TEST_F_TIMEOUT() takes a constant, fixed when the case
 * registers, before main() has read the options; so main() sets the
 * timeout from them: the -t seconds, plus 1 s for each MiB of the working
 * set, which the fill writes once through memory.max (the lab's throttled
 * swap disk moves about 8 MiB/s: 0.33 rounds/s of 24 MiB slices), plus one
 * fork pause and 60 s for the rest. That is 113 s for the plan's -t 5 and
 * 118 s for `make bench`'s -t 10, both of which the guest allows 300 s.
 */
static void set_timeouts(void)
{
	harness_set_timeout(NULL, 60 + opt_seconds + opt_ws_mib + opt_fork_ms / 1000);
}

static void __noreturn usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-t SECONDS] [-j THREADS] [-w WORKING_SET_MIB] [-m MEMORY_MAX_MIB] [-f FORK_MS] [-s SEED] [-- HARNESS OPTIONS]\n"
		"after --, kselftest_harness options: -l lists the case, -h tells the others\n",
		prog);
	exit(KSFT_FAIL);
}

int main(int argc, char **argv)
{
	int c;

	/*
	 * Line-buffered even into a pipe: the case's process ends with
	 * _exit() or abort(), which would lose what stdio still held, and
	 * the forker's children must not inherit a full buffer.
	 */
	setvbuf(stdout, NULL, _IOLBF, 0);
	opt_seed = (uint64_t)time(NULL) * 2654435761u;
	/* "+": stop at the first argument that is not an option, or "--". */
	while ((c = getopt(argc, argv, "+t:j:w:m:f:s:")) != -1) {
		switch (c) {
		case 't':
			opt_seconds = atoi(optarg);
			break;
		case 'j':
			opt_threads = atoi(optarg);
			break;
		case 'w':
			opt_ws_mib = strtoul(optarg, NULL, 0);
			break;
		case 'm':
			opt_max_mib = strtoul(optarg, NULL, 0);
			break;
		case 'f':
			opt_fork_ms = atoi(optarg);
			break;
		case 's':
			opt_seed = strtoull(optarg, NULL, 0);
			break;
		default:
			usage(argv[0]);
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		usage(argv[0]);
	if (opt_seconds < 1 || opt_threads < 1 || opt_threads > MAX_THREADS ||
	    opt_max_mib < 4 || opt_ws_mib <= opt_max_mib || opt_fork_ms < 1)
		usage(argv[0]);
	page_size = psize();
	main_pid = getpid();
	set_timeouts();
	if (atexit(memcg_remove))
		ksft_exit_fail_msg("atexit failed\n");

	/* The harness gets argv[0] and what follows "--". */
	argv[optind - 1] = argv[0];
	argc -= optind - 1;
	argv += optind - 1;
	optind = 0;	/* glibc: the harness's getopt() starts afresh */
	return test_harness_run(argc, argv);
}
