// SPDX-License-Identifier: GPL-2.0
/*
 * fault_inject - allocation failures injected into swap-in faults and into
 * userfaultfd resolution must not crash the kernel, must show the process
 * only documented outcomes, and must never lose or corrupt a page.
 *
 * Each case runs in a forked child (its own process group) and uses the
 * kernel's fault-injection framework (Documentation/fault-injection/
 * fault-injection.rst) with task-filter=Y, so that only the task that sets
 * its own /proc/thread-self/make-it-fail sees failures:
 *
 *  1 swapin_fail_page_alloc  private anon pages are filled with a per-page
 *  2 swapin_failslab         pattern, swapped out with MADV_PAGEOUT (zram),
 *                            half of them also referenced by a "holder"
 *                            process so that both swap-in paths of
 *                            do_swap_page() run (skip-swapcache and swap
 *                            cache), then read back under injection. The
 *                            holder re-reads its shared half afterwards,
 *                            also when the child died first.
 *  3 uffd_copy_fail_page_alloc  a thread reads a MISSING-registered range;
 *                               a handler thread (the only injected task)
 *                               resolves it with UFFDIO_COPY, 4 pages a
 *                               call (one folio each), retries ENOMEM and
 *                               EAGAIN and follows partial copies by their
 *                               "copy" field.
 *  4 uffd_copy_failslab         the same, one page per 2 MiB and the handler
 *                               filling the next page ahead of the fault,
 *                               each touched page in a VMA of its own (a
 *                               PROT_NONE page between two keeps them from
 *                               merging). The slab objects are the anon_vma
 *                               and anon_vma_chain that the first ioctl
 *                               into a VMA allocates (mm/userfaultfd.c
 *                               uffd_lock_vma() -> mm/rmap.c
 *                               __anon_vma_prepare()): in one VMA that was
 *                               two draws a run, 0 injected 81% of the time
 *                               at 10%. A page table is no slab object
 *                               here: its split ptlock (mm/memory.c
 *                               ptlock_alloc()) needs
 *                               CONFIG_SPLIT_PTE_PTLOCKS, which mm/Kconfig
 *                               ties to NR_CPUS >= 4 (the debug guest has 2).
 *  5 uffd_zeropage_fail_page_alloc  the same stride, in one VMA, with
 *                               UFFDIO_ZEROPAGE, whose only page allocation
 *                               is the page table.
 *
 * Output is kselftest TAP, through tools/testing/selftests/kselftest.h.
 * "# <case>: ..." lines give per case how many pages were swapped out /
 * read back / bad, the ioctl errno counts and how many failures were
 * injected (read from the "times" budget, which lib/fault-inject.c
 * should_fail_ex() decrements once per failure). The last
 * lines are "# injected page_alloc=N slab=N (<case>=N ...)" (summed over the
 * cases, then per case: "skip" for a skipped case, "?" if unreadable) and
 * "# outcomes ..." (how the children ended, and every errno of
 * UFFDIO_COPY/UFFDIO_ZEROPAGE by name).
 *
 * Pass/fail: a case fails on any page whose content differs from what was
 * written, on a timeout, and:
 *  - swap cases: on any end but a clean exit, on MADV_PAGEOUT swapping out
 *    nothing, and unless the holder re-read all of its opt_pages - half
 *    pages with none bad. SIGKILL and SIGBUS fail too: an injected failure
 *    returns before the allocator could OOM-kill (mm/page_alloc.c
 *    prepare_alloc_pages()), 6.12's pagefault_out_of_memory() kills nobody,
 *    and do_swap_page()'s SIGBUS means a folio not uptodate after the read,
 *    i.e. an I/O error, which no allocation on the read side can cause (see
 *    swap_child());
 *  - uffd cases: on any end but a clean exit (the faulting thread is not
 *    injected, so it must get every page), on an errno other than ENOMEM or
 *    EAGAIN, on a result field that disagrees with errno, or on a page still
 *    failing after 1000 tries;
 *  - all cases, on the kernel's debugfs (no -D) with -p above 0: when no
 *    failure was injected, or the count could not be read back, since the
 *    case then proved nothing. Except swapin_failslab: in this kernel a
 *    swap-in fault allocates no slab object, and 0 was measured at 10%.
 *    The skip-swapcache path (mm/memory.c do_swap_page(): zram is
 *    SWP_SYNCHRONOUS_IO, __swap_count() == 1) allocates only the folio
 *    (alloc_swap_folio()) and reads it with an on-stack bio
 *    (mm/page_io.c swap_read_folio_bdev_sync()), which zram serves without
 *    allocating (drivers/block/zram/zram_drv.c zram_bvec_read(): only
 *    partial I/O allocates, a page). The swap-cache path
 *    (swapin_readahead() -> mm/swap_state.c __read_swap_cache_async())
 *    allocates the folio, charges no memcg (CONFIG_MEMCG is off) and could
 *    need slab only for xarray nodes in add_to_swap_cache(); but the
 *    reclaim that swapped the page out left a shadow entry in that very
 *    slot (mm/vmscan.c __remove_mapping() -> workingset_eviction()), so the
 *    nodes exist and add_to_swap_cache() only replaces the shadow. The
 *    shadow nodes go only with the slot (swap_range_free()) or under
 *    memory pressure (mm/workingset.c shadow shrinker, above
 *    present pages / 8 nodes), so more shared pages or a higher
 *    probability would not change that, and the page tables hold the swap
 *    entries, so they exist before the fault. That case then prints
 *    "# swapin_failslab: swap-in allocated no slab object (see ...)" and
 *    still checks every page.
 * A case is SKIPped only when its debugfs directory, swap, or userfaultfd(2)
 * is missing. Exit status: 0 if no case failed, 1 if one did, 2 on the
 * global watchdog ("# watchdog: stuck in <case>").
 *
 * Usage: fault_inject [-p PERCENT] [-n PAGES] [-t SECONDS] [-D DIR]
 *   -p  failure probability in percent (default 10; 0 is a control run)
 *   -n  pages per case (default 2048, 8 MiB)
 *   -t  timeout per case in seconds (default 30)
 *   -D  debugfs root (default /sys/kernel/debug). With -D, make-it-fail is
 *       written to DIR/make-it-fail instead of /proc, so a fake tree (or an
 *       empty directory, to see the SKIP paths) never touches the running
 *       kernel's fault injection.
 *
 * Every exit path (normal, atexit, SIGINT/TERM/HUP/QUIT, crash signals, the
 * watchdog) first kills the running case and sets probability back to 0,
 * then restores every knob it changed, so later tests in the same guest see
 * no injection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "guest_util.h"
#include "kselftest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT		21
#endif

#define DEFAULT_DEBUGFS		"/sys/kernel/debug"
#define DEFAULT_PAGES		2048
#define DEFAULT_PERCENT		10
#define DEFAULT_TIMEOUT		30
#define MAX_PAGES		16384

/*
 * "times" is an atomic_t that should_fail_ex() decrements once per injected
 * failure unless it is -1, and injection stops at 0 (lib/fault-inject.c).
 * A budget that cannot run out turns it into a failure counter.
 */
#define TIMES_BUDGET		1000000000L
#define TIMES_BUDGET_STR	"1000000000"

#define COPY_CHUNK		4	/* pages per UFFDIO_COPY: partial copies */
#define SPARSE_STRIDE		512	/* one page per page table (x86-64) */
#define SPARSE_CHUNK		2	/* the faulting page and the next one */
#define MAX_TRIES		1000	/* per ioctl, before the case fails */
#define HANDLER_STACK		(256 * 1024)
#define ERRNO_SLOTS		256
#define PM_SWAPPED		(1ULL << 62)	/* Documentation/admin-guide/mm/pagemap.rst */
#define PM_PRESENT		(1ULL << 63)

enum facility { FAIL_PAGE_ALLOC, FAILSLAB, NR_FACILITIES };
enum case_kind { SWAPIN, UFFD_COPY, UFFD_ZEROPAGE };

static const char *const facility_dir[NR_FACILITIES] = {
	[FAIL_PAGE_ALLOC] = "fail_page_alloc",
	[FAILSLAB] = "failslab",
};

static const char *const facility_short[NR_FACILITIES] = {
	[FAIL_PAGE_ALLOC] = "page_alloc",
	[FAILSLAB] = "slab",
};

struct knob {
	const char *name;
	const char *value;
};

/*
 * Written with probability already 0 (set first), probability last.
 * mm/fail_page_alloc.c should_fail_alloc_page() filters before the common
 * should_fail_ex():
 */
static const struct knob page_alloc_knobs[] = {
	/* Only tasks with make-it-fail=1 (fail_task(), in_task() only). */
	{ "task-filter", "Y" },
	/* Fault-path allocations can sleep (__GFP_DIRECT_RECLAIM). */
	{ "ignore-gfp-wait", "N" },
	/* GFP_HIGHUSER_MOVABLE carries __GFP_HIGHMEM even on x86-64. */
	{ "ignore-gfp-highmem", "N" },
	/* The default 1 would spare the order-0 folios this test is about. */
	{ "min-order", "0" },
	/* Every call that passes the filters draws against probability. */
	{ "interval", "1" },
	/* No initial budget of spared bytes. */
	{ "space", "0" },
	/* fail_dump() silent: no console noise, with or without NOWARN. */
	{ "verbose", "0" },
	{ "times", TIMES_BUDGET_STR },
};

/* mm/failslab.c should_failslab(): the same, minus highmem/order. */
static const struct knob failslab_knobs[] = {
	{ "task-filter", "Y" },
	{ "ignore-gfp-wait", "N" },
	/* N: every cache, not only those with /sys/kernel/slab/<c>/failslab. */
	{ "cache-filter", "N" },
	{ "interval", "1" },
	{ "space", "0" },
	{ "verbose", "0" },
	{ "times", TIMES_BUDGET_STR },
};

static const struct knob *const facility_knobs[NR_FACILITIES] = {
	[FAIL_PAGE_ALLOC] = page_alloc_knobs,
	[FAILSLAB] = failslab_knobs,
};

static const size_t facility_nr_knobs[NR_FACILITIES] = {
	[FAIL_PAGE_ALLOC] = ARRAY_SIZE(page_alloc_knobs),
	[FAILSLAB] = ARRAY_SIZE(failslab_knobs),
};

struct test_case {
	const char *name;
	enum case_kind kind;
	enum facility facility;
	uint64_t seed;		/* per-case tag constant */
	unsigned long stride;	/* uffd: pages from one touched page to the next */
	unsigned long chunk;	/* uffd: touched pages resolved per fault */
	bool vma_per_page;	/* uffd: each touched page in its own VMA */
	/*
	 * Set when the source shows the case's path allocates nothing the
	 * facility covers: 0 injected is then reported with this, not failed.
	 */
	const char *none_expected;
};

static const struct test_case cases[] = {
	{ "swapin_fail_page_alloc", SWAPIN, FAIL_PAGE_ALLOC,
	  0x5a17000000000001ULL, 1, 1, false, NULL },
	{ "swapin_failslab", SWAPIN, FAILSLAB,
	  0x5a17000000000002ULL, 1, 1, false,
	  "swap-in allocated no slab object (see mm/swap_state.c:add_to_swap_cache)" },
	{ "uffd_copy_fail_page_alloc", UFFD_COPY, FAIL_PAGE_ALLOC,
	  0x5a17000000000003ULL, 1, COPY_CHUNK, false, NULL },
	{ "uffd_copy_failslab", UFFD_COPY, FAILSLAB,
	  0x5a17000000000004ULL, SPARSE_STRIDE, SPARSE_CHUNK, true, NULL },
	{ "uffd_zeropage_fail_page_alloc", UFFD_ZEROPAGE, FAIL_PAGE_ALLOC,
	  0, SPARSE_STRIDE, SPARSE_CHUNK, false, NULL },
};

#define NR_CASES	ARRAY_SIZE(cases)

/* What a case's processes report, in a MAP_SHARED page of the parent. */
struct case_result {
	char msg[320];			/* first problem seen */
	/* swap cases */
	unsigned long swapped_sole, swapped_shared, present;
	long majflt;
	int holder_ran;			/* 1: after "go", 2: after the child died */
	unsigned long holder_checked, holder_bad;
	/* all cases */
	unsigned long checked, bad;
	/* uffd cases */
	int handler_failed;
	unsigned long events, dup_events, calls, ok, partial, max_tries;
	unsigned long err[ERRNO_SLOTS];
};

static unsigned int opt_percent = DEFAULT_PERCENT;
static unsigned long opt_pages = DEFAULT_PAGES;
static unsigned int opt_timeout = DEFAULT_TIMEOUT;
static const char *opt_debugfs = DEFAULT_DEBUGFS;
static bool fake_tree;		/* -D given: never touch /proc make-it-fail */

static size_t page_size;
static size_t words_per_page;
static char mif_fake_path[PATH_MAX];

/* State the signal handlers read. */
struct saved_knob {
	char path[PATH_MAX];
	char value[32];
};

static struct saved_knob saved[NR_FACILITIES][16];
static volatile sig_atomic_t nr_saved[NR_FACILITIES];
static volatile sig_atomic_t armed[NR_FACILITIES];
static char probability_path[NR_FACILITIES][PATH_MAX];
static volatile sig_atomic_t current_child;
static const char *volatile current_case = "setup";

/* Totals for the closing lines. */
static unsigned long injected_total[NR_FACILITIES];
static bool injected_known[NR_FACILITIES];
#define INJECTED_SKIPPED	(-2L)	/* case_injected[]: not run */
static long case_injected[NR_CASES];	/* -1: "times" unreadable */
static unsigned int out_clean, out_sigkill, out_sigbus, out_other_sig, out_timeout;
static unsigned long copy_calls, copy_ok, copy_partial, copy_err[ERRNO_SLOTS];
static unsigned long zp_calls, zp_ok, zp_partial, zp_err[ERRNO_SLOTS];

/* ---- files; the write side is async-signal-safe ---- */

static int write_str(const char *path, const char *val)
{
	/*
	 * No O_TRUNC on debugfs (it would go through debugfs_setattr());
	 * a fake tree is made of regular files that need it.
	 */
	int fd = open(path, O_WRONLY | O_CLOEXEC | (fake_tree ? O_TRUNC : 0));
	size_t len = strlen(val);
	ssize_t ret;

	if (fd < 0)
		return -1;
	ret = write(fd, val, len);
	close(fd);
	return ret == (ssize_t)len ? 0 : -1;
}

static int read_str(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t ret;

	if (fd < 0)
		return -1;
	ret = read(fd, buf, size - 1);
	close(fd);
	if (ret < 0)
		return -1;
	buf[ret] = '\0';
	while (ret > 0 && (buf[ret - 1] == '\n' || buf[ret - 1] == ' '))
		buf[--ret] = '\0';
	return 0;
}

static void knob_path(char *buf, enum facility f, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s/%s", opt_debugfs, facility_dir[f], name);
}

/* ---- restoring: every exit path of the parent ---- */

static void kill_current_child(void)
{
	pid_t pid = current_child;

	/* The child leads its own process group (the holder is in it). */
	if (pid > 0)
		kill(-pid, SIGKILL);
}

static void restore_injection(void)
{
	int f, i;

	/* First stop injecting everywhere, then put the knobs back. */
	for (f = 0; f < NR_FACILITIES; f++)
		if (armed[f])
			write_str(probability_path[f], "0");
	for (f = 0; f < NR_FACILITIES; f++) {
		if (!armed[f])
			continue;
		for (i = 0; i < nr_saved[f]; i++)
			write_str(saved[f][i].path, saved[f][i].value);
	}
	/*
	 * Nobody but the case's children ever sets make-it-fail and they are
	 * killed above; clear ours anyway, so that nothing forked from here
	 * later could inherit it (kernel/fork.c copies task_struct whole).
	 */
	if ((armed[FAIL_PAGE_ALLOC] || armed[FAILSLAB]) && !fake_tree)
		write_str("/proc/self/make-it-fail", "0");
}

static void write_raw(const char *s)
{
	ssize_t ret = write(STDOUT_FILENO, s, strlen(s));

	(void)ret;
}

static void on_watchdog(int sig)
{
	(void)sig;
	kill_current_child();
	restore_injection();
	write_raw("# watchdog: stuck in ");
	write_raw(current_case);
	write_raw("\n");
	_exit(2);
}

static void on_fatal(int sig)
{
	kill_current_child();
	restore_injection();
	/* SA_RESETHAND: the default action runs on re-raise. */
	raise(sig);
}

static void install_signals(void)
{
	static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				     SIGSEGV, SIGBUS, SIGABRT, SIGFPE };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_watchdog;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	for (i = 0; i < ARRAY_SIZE(fatal); i++)
		sigaction(fatal[i], &sa, NULL);
}

static void reset_signals_in_child(void)
{
	static const int sigs[] = { SIGALRM, SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				    SIGSEGV, SIGBUS, SIGABRT, SIGFPE };
	sigset_t none;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- arming a facility ---- */

static bool facility_present(enum facility f, char *reason, size_t size)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/probability", opt_debugfs,
		 facility_dir[f]);
	if (access(path, W_OK) == 0)
		return true;
	snprintf(reason, size, "no %s/%s (needs debugfs, CONFIG_FAULT_INJECTION_DEBUG_FS and %s)",
		 opt_debugfs, facility_dir[f],
		 f == FAIL_PAGE_ALLOC ? "CONFIG_FAIL_PAGE_ALLOC" : "CONFIG_FAILSLAB");
	return false;
}

static int arm_facility(enum facility f, char *why, size_t size)
{
	const struct knob *k = facility_knobs[f];
	char path[PATH_MAX], val[16];
	size_t i;

	knob_path(probability_path[f], f, "probability");
	if (!nr_saved[f]) {
		for (i = 0; i < facility_nr_knobs[f]; i++) {
			struct saved_knob *s = &saved[f][nr_saved[f]];

			knob_path(s->path, f, k[i].name);
			if (read_str(s->path, s->value, sizeof(s->value))) {
				snprintf(why, size, "read %s: %s", s->path, strerror(errno));
				return -1;
			}
			nr_saved[f]++;
		}
		/* Our own make-it-fail could only be 1 if inherited. */
		if (!fake_tree)
			write_str("/proc/self/make-it-fail", "0");
	}
	armed[f] = 1;
	if (write_str(probability_path[f], "0")) {
		snprintf(why, size, "write %s: %s", probability_path[f], strerror(errno));
		return -1;
	}
	for (i = 0; i < facility_nr_knobs[f]; i++) {
		knob_path(path, f, k[i].name);
		if (write_str(path, k[i].value)) {
			snprintf(why, size, "write %s=%s: %s", path, k[i].value,
				 strerror(errno));
			return -1;
		}
	}
	snprintf(val, sizeof(val), "%u", opt_percent);
	if (write_str(probability_path[f], val)) {
		snprintf(why, size, "write %s: %s", probability_path[f], strerror(errno));
		return -1;
	}
	return 0;
}

/* Stops injection; returns the failures injected since arming, or -1. */
static long disarm_facility(enum facility f)
{
	char path[PATH_MAX], buf[32];
	char *end;
	long left;

	write_str(probability_path[f], "0");
	knob_path(path, f, "times");
	if (read_str(path, buf, sizeof(buf)))
		return -1;
	left = strtol(buf, &end, 10);
	if (end == buf || *end || left < 0 || left > TIMES_BUDGET)
		return -1;
	return TIMES_BUDGET - left;
}

/*
 * make-it-fail for the calling thread. The fd is opened before injection
 * starts: open() allocates a struct file and could fail under failslab,
 * while proc_fault_inject_write() (fs/proc/base.c) allocates nothing.
 */
static int open_make_it_fail(void)
{
	if (fake_tree)
		return open(mif_fake_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	return open("/proc/thread-self/make-it-fail", O_WRONLY | O_CLOEXEC);
}

static int set_make_it_fail(int fd, int on)
{
	/* On the stack: a kernel-mode fault on .rodata could be injected. */
	char buf[2] = { on ? '1' : '0', '\n' };
	int tries;

	for (tries = 0; tries < 100; tries++) {
		if (lseek(fd, 0, SEEK_SET) == 0 && write(fd, buf, 2) == 2)
			return 0;
	}
	return -1;
}

/* ---- page contents ---- */

static inline uint64_t page_word(uint64_t seed, unsigned long page,
				 unsigned long i)
{
	uint64_t tag = seed ^ page;

	/* First and last word: the bare tag, readable in a hex dump. */
	if (i == 0 || i == words_per_page - 1)
		return tag;
	return tag * 0x9e3779b97f4a7c15ULL + i;
}

static void fill_page(uint64_t *p, uint64_t seed, unsigned long page)
{
	unsigned long i;

	for (i = 0; i < words_per_page; i++)
		p[i] = page_word(seed, page, i);
}

static void __attribute__((format(printf, 2, 3)))
result_msg(struct case_result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->msg[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

/*
 * Reads one page (the first load is what faults it in) and compares every
 * word. Returns true if it matches; records the first mismatch.
 */
static bool page_ok(const uint64_t *p, uint64_t seed, bool zero,
		    unsigned long page, const char *who, struct case_result *r)
{
	unsigned long i;

	for (i = 0; i < words_per_page; i++) {
		uint64_t want = zero ? 0 : page_word(seed, page, i);
		uint64_t got = p[i];
		const char *what = "garbage";

		if (got == want)
			continue;
		if (got == 0)
			what = "zero: content lost";
		else if (!zero && (got ^ seed) < opt_pages && i == 0)
			what = "another page's tag: misplaced";
		result_msg(r, "%s: page %lu word %lu: want %#llx got %#llx (%s)",
			   who, page, i, (unsigned long long)want,
			   (unsigned long long)got, what);
		return false;
	}
	return true;
}

static void count_errno(unsigned long *hist, int e)
{
	hist[e > 0 && e < ERRNO_SLOTS ? e : 0]++;
}

static const char *errno_name(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "E?";
}

static void format_errnos(char *buf, size_t size, const unsigned long *hist)
{
	size_t len = 0;
	int e;

	buf[0] = '\0';
	for (e = 0; e < ERRNO_SLOTS && len < size; e++) {
		if (!hist[e])
			continue;
		len += snprintf(buf + len, size - len, " %s=%lu",
				e ? errno_name(e) : "other", hist[e]);
	}
	if (!buf[0])
		snprintf(buf, size, " none");
}

/* ---- case 1, 2: swap-in ---- */

static long majflt_now(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return ru.ru_majflt;
}

/* Counts swapped and present pages of [first, first + nr). */
static int count_swapped(char *area, unsigned long first, unsigned long nr,
			 unsigned long *swapped, unsigned long *present)
{
	uint64_t *pm = malloc(nr * sizeof(*pm));
	off_t off = (off_t)((uintptr_t)(area + first * page_size) / page_size) *
		    (off_t)sizeof(*pm);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	unsigned long i;
	ssize_t ret;

	*swapped = 0;
	if (fd < 0 || !pm) {
		free(pm);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ret = pread(fd, pm, nr * sizeof(*pm), off);
	close(fd);
	if (ret != (ssize_t)(nr * sizeof(*pm))) {
		free(pm);
		return -1;
	}
	for (i = 0; i < nr; i++) {
		if (pm[i] & PM_SWAPPED)
			(*swapped)++;
		else if (pm[i] & PM_PRESENT)
			(*present)++;
	}
	free(pm);
	return 0;
}

/*
 * The holder keeps a second reference on the second half's swap entries:
 * do_swap_page() (mm/memory.c) skips the swap cache only for
 * SWP_SYNCHRONOUS_IO (zram) entries with __swap_count() == 1, so the first
 * half is swapped in through alloc_swap_folio() + swap_read_folio() and the
 * second half through swapin_readahead() and the swap cache
 * (__read_swap_cache_async(), add_to_swap_cache(), readahead). Afterwards
 * it reads the second half itself: a swap slot or swap-cache folio that an
 * error path damaged shows up there even if the injected task never saw it.
 */
static void __attribute__((noreturn))
holder(char *area, const struct test_case *tc, struct case_result *r,
       int ready_fd, int go_fd)
{
	unsigned long half = opt_pages / 2, i;
	ssize_t n;
	char c = 0;

	/*
	 * No PR_SET_PDEATHSIG: the holder has to outlive a child that dies
	 * (below). The parent waits for it and then kills the whole process
	 * group, on every exit path and at its deadline; this alarm is only
	 * for a parent that was SIGKILLed itself.
	 */
	alarm(2 * opt_timeout);
	/* Drops our swap references of the first half (zap_pte_range()). */
	if (madvise(area, half * page_size, MADV_DONTNEED))
		_exit(8);
	if (write(ready_fd, "r", 1) != 1)
		_exit(7);
	do
		n = read(go_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	/*
	 * "g": the child read everything and cleared its make-it-fail. EOF:
	 * the child ended first (a signal, an early return), its mm already
	 * gone (do_exit() runs exit_mm() before exit_files()). Its error paths
	 * may have left just the damage this re-read is for, so verify then
	 * too. Either way no injected task is left, and the holder's own
	 * make-it-fail is 0 (forked before the child set its own, and
	 * task-filter=Y), so this re-read is never injected.
	 */
	if (n == 1 && c == 'g')
		r->holder_ran = 1;
	else if (n == 0)
		r->holder_ran = 2;
	else
		_exit(6);
	for (i = half; i < opt_pages; i++) {
		if (!page_ok((uint64_t *)(area + i * page_size), tc->seed, false,
			     i, "holder", r))
			r->holder_bad++;
		r->holder_checked++;
	}
	_exit(r->holder_bad ? 1 : 0);
}

static int swap_child(const struct test_case *tc, struct case_result *r)
{
	size_t len = opt_pages * page_size;
	unsigned long half = opt_pages / 2, i, sw = 0, tries;
	int ready[2], go[2], mif, status;
	pid_t pid;
	char *area;
	char c;

	area = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		result_msg(r, "mmap: %s", strerror(errno));
		return 3;
	}
	/* Base pages: swap entries, and faults, one per page. */
	madvise(area, len, MADV_NOHUGEPAGE);
	for (i = 0; i < opt_pages; i++)
		fill_page((uint64_t *)(area + i * page_size), tc->seed, i);

	/*
	 * MADV_PAGEOUT isolates only folios on the LRU; those still in
	 * another CPU's per-CPU LRU batch are skipped, so try a few times.
	 */
	for (tries = 0; tries < 3; tries++) {
		unsigned long present = 0;

		if (madvise(area, len, MADV_PAGEOUT)) {
			result_msg(r, "MADV_PAGEOUT: %s", strerror(errno));
			return 3;
		}
		if (count_swapped(area, 0, opt_pages, &sw, &present)) {
			result_msg(r, "read /proc/self/pagemap failed");
			return 3;
		}
		if (sw == opt_pages)
			break;
		usleep(10000);
	}

	if (pipe(ready) || pipe(go)) {
		result_msg(r, "pipe: %s", strerror(errno));
		return 3;
	}
	pid = fork();
	if (pid < 0) {
		result_msg(r, "fork holder: %s", strerror(errno));
		return 3;
	}
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		holder(area, tc, r, ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1) {
		result_msg(r, "holder did not start");
		return 3;
	}
	count_swapped(area, 0, half, &r->swapped_sole, &r->present);
	count_swapped(area, half, opt_pages - half, &r->swapped_shared,
		      &r->present);
	if (!r->swapped_sole && !r->swapped_shared) {
		result_msg(r, "MADV_PAGEOUT swapped out none of %lu pages: the case would prove nothing",
			   opt_pages);
		return 3;
	}

	mif = open_make_it_fail();
	if (mif < 0) {
		result_msg(r, "open make-it-fail: %s", strerror(errno));
		return 3;
	}
	r->majflt = majflt_now();
	if (set_make_it_fail(mif, 1)) {
		result_msg(r, "write make-it-fail: %s", strerror(errno));
		return 3;
	}
	/*
	 * From here every allocation of this task may fail. A failed swap-in
	 * allocation makes do_swap_page() return VM_FAULT_OOM, which on x86
	 * (arch/x86/mm/fault.c do_user_addr_fault()) goes to
	 * pagefault_out_of_memory(), which in 6.12 (mm/oom_kill.c) does not
	 * invoke the OOM killer: it warns (ratelimited, "Huh VM_FAULT_OOM
	 * leaked out to the #PF handler. Retrying PF", not a splat) and
	 * returns to user space, which retries the fault. The injected
	 * failure itself returns before the allocator could OOM-kill
	 * (mm/page_alloc.c prepare_alloc_pages()), so a SIGKILL is no
	 * documented outcome here. Nor is SIGBUS: do_swap_page() raises it
	 * for a folio that is not uptodate after the read, an I/O error.
	 * The read allocates nothing that could fail (zram serves whole
	 * pages in place, drivers/block/zram/zram_drv.c zram_bvec_read();
	 * a block device's bio comes from a mempool), and a folio whose
	 * allocations failed never becomes visible: __read_swap_cache_async()
	 * takes it back out (fail_unlock), alloc_swap_folio() returns NULL.
	 */
	for (i = 0; i < opt_pages; i++) {
		if (!page_ok((uint64_t *)(area + i * page_size), tc->seed, false,
			     i, "child", r))
			r->bad++;
		r->checked++;
	}
	if (set_make_it_fail(mif, 0))
		result_msg(r, "could not clear make-it-fail");
	r->majflt = majflt_now() - r->majflt;

	if (write(go[1], "g", 1) != 1 ||
	    waitpid(pid, &status, 0) != pid) {
		result_msg(r, "holder lost: %s", strerror(errno));
		return 4;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		if (!r->holder_bad)
			result_msg(r, "holder ended with status %#x", status);
		return 4;
	}
	return r->bad ? 1 : 0;
}

/* ---- case 3, 4, 5: userfaultfd ---- */

struct uffd_ctx {
	const struct test_case *tc;
	struct case_result *r;
	char *area;
	unsigned long stride, chunk;
	bool zeropage;
	int uffd;
	char *src;
	unsigned char *resolved;
	int done;
	struct timespec deadline;
};

static char *uffd_page(struct uffd_ctx *c, unsigned long page)
{
	return c->area + page * c->stride * page_size;
}

static void *uffd_faulter(void *arg)
{
	struct uffd_ctx *c = arg;
	unsigned long i;

	for (i = 0; i < opt_pages; i++) {
		if (!page_ok((uint64_t *)uffd_page(c, i), c->tc->seed, c->zeropage,
			     i, "faulting thread", c->r))
			c->r->bad++;
		c->r->checked++;
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void __attribute__((format(printf, 2, 3)))
handler_fail(struct uffd_ctx *c, const char *fmt, ...)
{
	va_list ap;

	c->r->handler_failed = 1;
	if (c->r->msg[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->r->msg, sizeof(c->r->msg), fmt, ap);
	va_end(ap);
}

static bool past_deadline(const struct timespec *d)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->tv_sec ||
	       (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

/*
 * Resolves pages [first, first + count) (contiguous only when stride is 1)
 * with one ioctl, retrying allocation failures. What the kernel may answer
 * (fs/userfaultfd.c userfaultfd_copy()/userfaultfd_zeropage(), mm/
 * userfaultfd.c mfill_atomic()):
 *  - 0, copy == len: all installed and the waiter woken;
 *  - -1/EAGAIN, 0 < copy < len: the first copy bytes were installed and
 *    woken, the loop stopped at its first error (e.g. ENOMEM): continue
 *    after them;
 *  - -1/ENOMEM, copy == -ENOMEM: nothing installed: vma_alloc_folio(),
 *    mem_cgroup_charge(), mm_alloc_pmd(), __pte_alloc() or, in
 *    uffd_lock_vma(), anon_vma_prepare() failed;
 *  - -1/EAGAIN, copy == -EAGAIN: mmap_changing, or the pmd changed under
 *    mfill_atomic_install_pte(): nothing installed.
 * ioctl_userfaultfd(2) lists EAGAIN, EINVAL, ENOENT, ESRCH ("Possible
 * errors include"); ENOMEM is the code's allocation failure. EEXIST means
 * a page was present that this handler never installed (a failed call left
 * it behind): a failure, as is any other errno. EFAULT cannot come from
 * the source buffer, which is mlocked.
 */
static int resolve_run(struct uffd_ctx *c, unsigned long first,
		       unsigned long count)
{
	struct case_result *r = c->r;
	unsigned long tries = 0, j, k;

	while (count) {
		struct uffdio_copy cp;
		struct uffdio_zeropage zp;
		size_t len = count * page_size;
		long long done;
		int ret, e;

		r->calls++;
		if (c->zeropage) {
			memset(&zp, 0, sizeof(zp));
			zp.range.start = (uintptr_t)uffd_page(c, first);
			zp.range.len = len;
			zp.zeropage = LLONG_MIN;
			ret = ioctl(c->uffd, UFFDIO_ZEROPAGE, &zp);
			done = zp.zeropage;
		} else {
			for (j = 0; j < count; j++)
				fill_page((uint64_t *)(c->src + j * page_size),
					  c->tc->seed, first + j);
			memset(&cp, 0, sizeof(cp));
			cp.dst = (uintptr_t)uffd_page(c, first);
			cp.src = (uintptr_t)c->src;
			cp.len = len;
			cp.copy = LLONG_MIN;
			ret = ioctl(c->uffd, UFFDIO_COPY, &cp);
			done = cp.copy;
		}
		e = ret ? errno : 0;
		if (!ret) {
			if (done != (long long)len) {
				handler_fail(c, "page %lu: ioctl returned 0 but reported %lld of %zu bytes",
					     first, done, len);
				return -1;
			}
			for (j = 0; j < count; j++)
				c->resolved[first + j] = 1;
			r->ok++;
			if (tries > r->max_tries)
				r->max_tries = tries;
			return 0;
		}
		count_errno(r->err, e);
		if (done > 0) {
			if (e != EAGAIN || done % (long long)page_size ||
			    done >= (long long)len) {
				handler_fail(c, "page %lu: %s with %lld of %zu bytes done",
					     first, errno_name(e), done, len);
				return -1;
			}
			r->partial++;
			k = done / page_size;
			for (j = 0; j < k; j++)
				c->resolved[first + j] = 1;
			first += k;
			count -= k;
			continue;
		}
		if (done != -(long long)e) {
			handler_fail(c, "page %lu: errno %s but the result field says %lld",
				     first, errno_name(e), done);
			return -1;
		}
		if (e != ENOMEM && e != EAGAIN) {
			const char *why = e == EEXIST ?
				" (a page this handler never installed is present)" : "";

			handler_fail(c, "page %lu: unexpected %s from %s%s", first,
				     errno_name(e),
				     c->zeropage ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
				     why);
			return -1;
		}
		if (++tries >= MAX_TRIES) {
			handler_fail(c, "page %lu: still %s after %d tries",
				     first, errno_name(e), MAX_TRIES);
			return -1;
		}
	}
	return 0;
}

/* The faulting page and the rest of its batch, ahead of the faults. */
static int resolve_batch(struct uffd_ctx *c, unsigned long page)
{
	unsigned long end = page + c->chunk, j = page, run;

	if (end > opt_pages)
		end = opt_pages;
	while (j < end) {
		if (c->resolved[j]) {
			j++;
			continue;
		}
		run = 1;
		while (c->stride == 1 && j + run < end && !c->resolved[j + run])
			run++;
		if (resolve_run(c, j, run))
			return -1;
		j += run;
	}
	return 0;
}

static void *uffd_handler(void *arg)
{
	struct uffd_ctx *c = arg;
	struct case_result *r = c->r;
	struct pollfd pfd = { .fd = c->uffd, .events = POLLIN };
	size_t vlen = opt_pages * c->stride * page_size;
	struct uffd_msg msg;
	int mif;

	/*
	 * Only this thread gets make-it-fail (/proc/thread-self): the
	 * faulting thread's own faults (pte_alloc(), the fault itself) are
	 * not injected, so every failure it could see would come from the
	 * resolution. make_it_fail is copied at clone, so the threads are
	 * created before it is set. This thread's stack, the source buffer
	 * and the ioctl arguments are mlocked, so no kernel-mode fault of its
	 * own (which kernelmode_fixup_or_oops() would turn into EFAULT on
	 * VM_FAULT_OOM) gets in the way.
	 */
	mif = open_make_it_fail();
	if (mif < 0 || set_make_it_fail(mif, 1)) {
		handler_fail(c, "make-it-fail for the handler thread: %s",
			     strerror(errno));
		return NULL;
	}
	while (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
		unsigned long off, page;
		ssize_t ret;
		int n;

		if (past_deadline(&c->deadline)) {
			set_make_it_fail(mif, 0);
			handler_fail(c, "no progress: faulting thread at page %lu of %lu",
				     r->checked, opt_pages);
			break;
		}
		n = poll(&pfd, 1, 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_make_it_fail(mif, 0);
			handler_fail(c, "poll: %s", strerror(errno));
			break;
		}
		if (n == 0)
			continue;
		ret = read(c->uffd, &msg, sizeof(msg));
		if (ret < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (ret != sizeof(msg)) {
			set_make_it_fail(mif, 0);
			handler_fail(c, "read uffd: %zd (%s)", ret,
				     ret < 0 ? strerror(errno) : "short");
			break;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			set_make_it_fail(mif, 0);
			handler_fail(c, "unexpected uffd event %#x", msg.event);
			break;
		}
		r->events++;
		off = (msg.arg.pagefault.address & ~(uint64_t)(page_size - 1)) -
		      (uintptr_t)c->area;
		if (off >= vlen || (off / page_size) % c->stride) {
			set_make_it_fail(mif, 0);
			handler_fail(c, "fault at %#llx, outside the touched pages",
				     (unsigned long long)msg.arg.pagefault.address);
			break;
		}
		page = off / page_size / c->stride;
		if (c->resolved[page]) {
			/*
			 * The event was queued before the page was installed;
			 * handle_userfault() rechecks the pte after queueing,
			 * a wake is harmless either way.
			 */
			struct uffdio_range wr = {
				.start = (uintptr_t)uffd_page(c, page),
				.len = page_size,
			};

			r->dup_events++;
			if (ioctl(c->uffd, UFFDIO_WAKE, &wr)) {
				set_make_it_fail(mif, 0);
				handler_fail(c, "UFFDIO_WAKE: %s", strerror(errno));
				break;
			}
			continue;
		}
		if (resolve_batch(c, page)) {
			set_make_it_fail(mif, 0);
			break;
		}
	}
	set_make_it_fail(mif, 0);
	close(mif);
	return NULL;
}

static int uffd_child(const struct test_case *tc, struct case_result *r)
{
	struct uffd_ctx c = { .tc = tc, .r = r };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	pthread_t faulter, handler;
	pthread_attr_t attr;
	size_t vlen;
	void *stack;
	__u64 need;

	/*
	 * The shared result page is not mapped in a fork child until touched:
	 * touch it here, not first from the injected handler.
	 */
	r->events = 0;
	c.zeropage = tc->kind == UFFD_ZEROPAGE;
	c.stride = tc->stride;
	c.chunk = tc->chunk;
	vlen = opt_pages * c.stride * page_size;
	clock_gettime(CLOCK_MONOTONIC, &c.deadline);
	c.deadline.tv_sec += opt_timeout > 3 ? opt_timeout - 2 : 1;

	/* O_NONBLOCK: a read after a racing wakeup must not block. */
	c.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (c.uffd < 0) {
		result_msg(r, "userfaultfd: %s", strerror(errno));
		return 3;
	}
	if (ioctl(c.uffd, UFFDIO_API, &api)) {
		result_msg(r, "UFFDIO_API: %s", strerror(errno));
		return 3;
	}
	/* NORESERVE: a sparse area (one page per 2 MiB) is mostly holes. */
	c.area = mmap(NULL, vlen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c.area == MAP_FAILED) {
		result_msg(r, "mmap %zu: %s", vlen, strerror(errno));
		return 3;
	}
	if (tc->vma_per_page) {
		unsigned long i;

		/*
		 * A PROT_NONE page before each touched page but the first
		 * ends its VMA: flags differ, so vma_merge never joins them,
		 * and each touched page gets an anon_vma and anon_vma_chain
		 * of its own on the handler's first ioctl into it (the
		 * neighbour, never filled, has no anon_vma to share:
		 * mm/rmap.c find_mergeable_anon_vma()). The faulting thread
		 * reads, which maps nothing and prepares no anon_vma
		 * (mm/memory.c do_anonymous_page()).
		 */
		for (i = 1; i < opt_pages; i++) {
			if (mprotect(uffd_page(&c, i) - page_size, page_size,
				     PROT_NONE)) {
				result_msg(r, "mprotect guard page %lu: %s", i,
					   strerror(errno));
				return 3;
			}
		}
	}
	madvise(c.area, vlen, MADV_NOHUGEPAGE);
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)c.area;
	reg.range.len = vlen;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(c.uffd, UFFDIO_REGISTER, &reg)) {
		result_msg(r, "UFFDIO_REGISTER: %s", strerror(errno));
		return 3;
	}
	need = (__u64)1 << (c.zeropage ? _UFFDIO_ZEROPAGE : _UFFDIO_COPY);
	if (!(reg.ioctls & need)) {
		result_msg(r, "range does not support %s",
			   c.zeropage ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY");
		return 3;
	}

	c.src = mmap(NULL, COPY_CHUNK * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	stack = mmap(NULL, HANDLER_STACK, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c.resolved = calloc(opt_pages, 1);
	if (c.src == MAP_FAILED || stack == MAP_FAILED || !c.resolved) {
		result_msg(r, "out of memory setting up");
		return 3;
	}
	/* Best effort as non-root; in the guest (root) it succeeds. */
	mlock(c.src, COPY_CHUNK * page_size);
	mlock(stack, HANDLER_STACK);
	/* Populated now rather than by the injected handler's own faults. */
	memset(c.resolved, 0, opt_pages);

	if (pthread_create(&faulter, NULL, uffd_faulter, &c)) {
		result_msg(r, "pthread_create faulter failed");
		return 3;
	}
	if (pthread_attr_init(&attr) ||
	    pthread_attr_setstack(&attr, stack, HANDLER_STACK) ||
	    pthread_create(&handler, &attr, uffd_handler, &c)) {
		result_msg(r, "pthread_create handler failed");
		return 3;
	}
	pthread_join(handler, NULL);
	/* The faulting thread may be blocked for good: _exit() ends it. */
	if (r->handler_failed)
		return 1;
	pthread_join(faulter, NULL);
	return r->bad ? 1 : 0;
}

/* ---- parent ---- */

static bool uffd_available(char *reason, size_t size)
{
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	snprintf(reason, size, "userfaultfd(2): %s%s", strerror(errno),
		 errno == ENOSYS ? " (CONFIG_USERFAULTFD off)" : "");
	return false;
}

/*
 * Waits for pid, then for the rest of its group, up to secs in all; kills
 * the group on timeout. *rest_status: how the last other member that ended
 * abnormally ended, 0 if none did.
 */
static int wait_child(pid_t pid, unsigned int secs, bool *timed_out,
		      int *rest_status)
{
	struct timespec tick = { .tv_nsec = 20 * 1000 * 1000 };
	unsigned long waited = 0, limit = secs * 50UL;
	int status = 0, st;
	pid_t ret;

	*timed_out = false;
	*rest_status = 0;
	for (;;) {
		ret = waitpid(pid, &status, WNOHANG);
		if (ret == pid)
			break;
		if (ret < 0 && errno != EINTR)
			return -1;
		if (waited++ >= limit) {
			*timed_out = true;
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		nanosleep(&tick, NULL);
	}
	/*
	 * The rest of the group is a swap case's holder. A child that ended
	 * without waiting for it (a signal, an early return) left it to us
	 * (subreaper; reparented before the child's exit status is
	 * reapable): it re-reads its half on EOF, let it finish before
	 * the group is killed.
	 */
	while (!*timed_out) {
		ret = waitpid(-pid, &st, WNOHANG);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			break;		/* ECHILD: nobody left */
		if (ret > 0) {
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				*rest_status = st;
			continue;
		}
		if (waited++ >= limit) {
			*timed_out = true;
			break;
		}
		nanosleep(&tick, NULL);
	}
	/* Reap whatever is left of the group. */
	kill(-pid, SIGKILL);
	while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR)
		;
	return status;
}

static void report_swap(const struct test_case *tc, const struct case_result *r)
{
	unsigned long half = opt_pages / 2;

	ksft_print_msg("%s: swapped out %lu of %lu pages (%lu of %lu sole-owner, %lu of %lu shared with a holder), %lu still present\n",
		 tc->name, r->swapped_sole + r->swapped_shared, opt_pages,
		 r->swapped_sole, half, r->swapped_shared, opt_pages - half,
		 r->present);
	ksft_print_msg("%s: read back %lu of %lu pages, %lu bad, majflt +%ld; holder re-read %lu of %lu pages, %lu bad%s\n",
		 tc->name, r->checked, opt_pages, r->bad, r->majflt,
		 r->holder_checked, opt_pages - half, r->holder_bad,
		 r->holder_ran == 2 ? " (after the child ended)" : "");
}

static void report_uffd(const struct test_case *tc, const struct case_result *r)
{
	char errs[512];

	format_errnos(errs, sizeof(errs), r->err);
	ksft_print_msg("%s: %lu fault events (%lu duplicate), %lu %s calls: ok=%lu partial=%lu errors:%s; most retries of one call %lu\n",
		 tc->name, r->events, r->dup_events, r->calls,
		 tc->kind == UFFD_ZEROPAGE ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
		 r->ok, r->partial, errs, r->max_tries);
	ksft_print_msg("%s: faulting thread read back %lu of %lu pages, %lu bad\n",
		 tc->name, r->checked, opt_pages, r->bad);
}

static void account_uffd(const struct test_case *tc, const struct case_result *r)
{
	bool zp = tc->kind == UFFD_ZEROPAGE;
	unsigned long *hist = zp ? zp_err : copy_err;
	int e;

	*(zp ? &zp_calls : &copy_calls) += r->calls;
	*(zp ? &zp_ok : &copy_ok) += r->ok;
	*(zp ? &zp_partial : &copy_partial) += r->partial;
	for (e = 0; e < ERRNO_SLOTS; e++)
		hist[e] += r->err[e];
}

static void run_case(const struct test_case *tc, struct case_result *r)
{
	char reason[PATH_MAX + 128];
	bool timed_out, pass;
	long injected;
	int status, rest_status;
	pid_t pid;

	current_case = tc->name;
	if (!facility_present(tc->facility, reason, sizeof(reason))) {
		ksft_test_result_code(KSFT_SKIP, tc->name, "%s", reason);
		return;
	}
	if (tc->kind == SWAPIN && !swap_active()) {
		ksft_test_result_code(KSFT_SKIP, tc->name, "no active swap (/proc/swaps is empty)");
		return;
	}
	if (tc->kind != SWAPIN && !uffd_available(reason, sizeof(reason))) {
		ksft_test_result_code(KSFT_SKIP, tc->name, "%s", reason);
		return;
	}

	/*
	 * Armed before the fork: with task-filter=Y nothing fails until the
	 * child (or its handler thread) sets its own make-it-fail, after its
	 * setup, and disarmed as soon as it is gone.
	 */
	case_injected[tc - cases] = -1;
	memset(r, 0, sizeof(*r));
	if (arm_facility(tc->facility, reason, sizeof(reason))) {
		disarm_facility(tc->facility);
		ksft_print_msg("%s: setting up %s: %s\n", tc->name,
			 facility_dir[tc->facility], reason);
		ksft_test_result(false, "%s\n", tc->name);
		return;
	}

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		disarm_facility(tc->facility);
		ksft_print_msg("%s: fork: %s\n", tc->name, strerror(errno));
		ksft_test_result(false, "%s\n", tc->name);
		return;
	}
	if (pid == 0) {
		reset_signals_in_child();
		setpgid(0, 0);
		/* A hang fails the case, it does not stall the run. */
		alarm(opt_timeout);
		_exit(tc->kind == SWAPIN ? swap_child(tc, r) : uffd_child(tc, r));
	}
	setpgid(pid, pid);
	current_child = pid;
	status = wait_child(pid, opt_timeout + 5, &timed_out, &rest_status);
	injected = disarm_facility(tc->facility);
	current_child = 0;

	if (tc->kind == SWAPIN) {
		report_swap(tc, r);
	} else {
		report_uffd(tc, r);
		account_uffd(tc, r);
	}
	case_injected[tc - cases] = injected;
	if (injected >= 0) {
		ksft_print_msg("%s: injected %s failures: %ld\n", tc->name,
			 facility_short[tc->facility], injected);
		injected_total[tc->facility] += injected;
		injected_known[tc->facility] = true;
	} else {
		ksft_print_msg("%s: could not read %s/times back\n", tc->name,
			 facility_dir[tc->facility]);
	}

	pass = !r->bad && !r->holder_bad;
	/*
	 * The holder's re-read is the only check of the swap-cache half that
	 * the injected child may not have reached: without all of it, half
	 * the pages could be lost unseen.
	 */
	if (tc->kind == SWAPIN &&
	    r->holder_checked != opt_pages - opt_pages / 2) {
		ksft_print_msg("%s: holder re-read %lu of its %lu pages%s\n", tc->name,
			 r->holder_checked, opt_pages - opt_pages / 2,
			 r->holder_ran ? "" : " (never released)");
		pass = false;
	}
	if (rest_status) {
		ksft_print_msg("%s: holder ended with status %#x\n", tc->name,
			 rest_status);
		pass = false;
	}
	if (status == -1) {
		ksft_print_msg("%s: waitpid: %s\n", tc->name, strerror(errno));
		pass = false;
	} else if (timed_out || (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)) {
		ksft_print_msg("%s: outcome: timeout (no result within %u s)\n",
			 tc->name, opt_timeout);
		out_timeout++;
		pass = false;
	} else if (WIFEXITED(status)) {
		int code = WEXITSTATUS(status);

		ksft_print_msg("%s: outcome: child exited %d\n", tc->name, code);
		if (code == 0 && r->checked == opt_pages)
			out_clean++;
		else
			pass = false;
	} else {
		int sig = WTERMSIG(status);

		/*
		 * SIGKILL and SIGBUS too: no injected failure leads to either
		 * (see swap_child()), and the uffd cases' faulting thread is
		 * not injected at all. A real OOM kill in an 8 MiB test would
		 * be worth a look as well.
		 */
		ksft_print_msg("%s: outcome: killed by signal %d (%s) after %lu pages\n",
			 tc->name, sig, strsignal(sig), r->checked);
		if (sig == SIGKILL)
			out_sigkill++;
		else if (sig == SIGBUS)
			out_sigbus++;
		else
			out_other_sig++;
		pass = false;
	}
	/*
	 * On the kernel's debugfs a case that injected nothing proved
	 * nothing, and a knob or filter that stopped matching would pass
	 * every case. A fake tree (-D) injects nothing; -p 0 is the control.
	 */
	if (!fake_tree && opt_percent > 0 && injected <= 0) {
		if (injected == 0 && tc->none_expected) {
			ksft_print_msg("%s: %s\n", tc->name, tc->none_expected);
		} else if (injected == 0) {
			ksft_print_msg("%s: injection did not happen: 0 %s failures at probability %u%%\n",
				 tc->name, facility_short[tc->facility],
				 opt_percent);
			pass = false;
		} else {
			ksft_print_msg("%s: injection not shown: %s/times unreadable\n",
				 tc->name, facility_dir[tc->facility]);
			pass = false;
		}
	}
	if (r->msg[0])
		ksft_print_msg("%s: %s\n", tc->name, r->msg);
	ksft_test_result(pass, "%s\n", tc->name);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-p PERCENT] [-n PAGES] [-t SECONDS] [-D DEBUGFS_DIR]\n"
		"  -p  injection probability, 0-100 (default %d)\n"
		"  -n  pages per case, 2-%d (default %d)\n"
		"  -t  timeout per case in seconds (default %d)\n"
		"  -D  debugfs root (default %s); make-it-fail then goes to DIR/make-it-fail\n",
		argv0, DEFAULT_PERCENT, MAX_PAGES, DEFAULT_PAGES,
		DEFAULT_TIMEOUT, DEFAULT_DEBUGFS);
	exit(2);
}

static unsigned long parse_num(const char *s, unsigned long min,
			       unsigned long max, const char *argv0)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage(argv0);
	return v;
}

int main(int argc, char **argv)
{
	struct case_result *r;
	char errs[512];
	size_t i;
	int opt;

	while ((opt = getopt(argc, argv, "p:n:t:D:h")) != -1) {
		switch (opt) {
		case 'p':
			opt_percent = parse_num(optarg, 0, 100, argv[0]);
			break;
		case 'n':
			opt_pages = parse_num(optarg, 2, MAX_PAGES, argv[0]);
			break;
		case 't':
			opt_timeout = parse_num(optarg, 2, 3600, argv[0]);
			break;
		case 'D':
			opt_debugfs = optarg;
			fake_tree = true;
			break;
		default:
			usage(argv[0]);
		}
	}
	page_size = sysconf(_SC_PAGESIZE);
	words_per_page = page_size / sizeof(uint64_t);
	snprintf(mif_fake_path, sizeof(mif_fake_path), "%s/make-it-fail",
		 opt_debugfs);

	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (i = 0; i < NR_CASES; i++)
		case_injected[i] = INJECTED_SKIPPED;
	/*
	 * An orphaned holder is reparented to us, to finish its re-read and
	 * be reaped (wait_child()).
	 */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	install_signals();
	atexit(restore_injection);
	alarm(NR_CASES * (opt_timeout + 10) + 30);

	ksft_print_header();
	ksft_set_plan(NR_CASES);
	ksft_print_msg("fault_inject: %lu pages per case, probability %u%%, %u s per case, debugfs %s%s\n",
		 opt_pages, opt_percent, opt_timeout, opt_debugfs,
		 fake_tree ? " (not the kernel's: nothing is injected)" : "");
	for (i = 0; i < NR_CASES; i++)
		run_case(&cases[i], r);
	current_case = "teardown";
	restore_injection();
	alarm(0);

	printf("# injected");
	for (i = 0; i < NR_FACILITIES; i++) {
		if (injected_known[i])
			printf(" %s=%lu", facility_short[i], injected_total[i]);
		else
			printf(" %s=?", facility_short[i]);
	}
	/* Per case too: a sum hides the case that injected nothing. */
	for (i = 0; i < NR_CASES; i++) {
		printf("%s%s=", i ? " " : " (", cases[i].name);
		if (case_injected[i] >= 0)
			printf("%ld", case_injected[i]);
		else
			printf("%s", case_injected[i] == INJECTED_SKIPPED ? "skip" : "?");
	}
	printf(")\n");
	/* One line the lab copies into its report (lab/src/results.rs). */
	printf("# volume injected");
	for (i = 0; i < NR_FACILITIES; i++)
		if (injected_known[i])
			printf(" %s=%lu", facility_short[i], injected_total[i]);
	printf(" copy_calls=%lu zeropage_calls=%lu\n", copy_calls, zp_calls);
	format_errnos(errs, sizeof(errs), copy_err);
	printf("# outcomes children: clean=%u sigkill=%u sigbus=%u other_signal=%u timeout=%u;"
	       " UFFDIO_COPY: calls=%lu ok=%lu partial=%lu errors:%s;",
	       out_clean, out_sigkill, out_sigbus, out_other_sig, out_timeout,
	       copy_calls, copy_ok, copy_partial, errs);
	format_errnos(errs, sizeof(errs), zp_err);
	printf(" UFFDIO_ZEROPAGE: calls=%lu ok=%lu partial=%lu errors:%s\n",
	       zp_calls, zp_ok, zp_partial, errs);
	ksft_finished();
}
