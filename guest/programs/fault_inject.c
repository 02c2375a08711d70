// SPDX-License-Identifier: GPL-2.0
/*
 * fault_inject - allocation failures injected into swap-in faults and into
 * userfaultfd resolution must not crash the kernel, must show the process
 * only documented outcomes, and must never lose or corrupt a page.
 *
 * The cases are kselftest_harness.h tests, named fixture.variant.test; the
 * name in parentheses is the one their "# <case>: ..." lines and the
 * closing summary use. They use the kernel's fault-injection framework
 * (Documentation/fault-injection/fault-injection.rst) with task-filter=Y,
 * so that only the task that sets its own /proc/thread-self/make-it-fail
 * sees failures:
 *
 *  swapin.fail_page_alloc.read_back  (swapin_fail_page_alloc)
 *  swapin.failslab.read_back         (swapin_failslab)
 *      private anon pages are filled with a per-page pattern, swapped out
 *      with MADV_PAGEOUT (zram), half of them also referenced by a "holder"
 *      process so that both swap-in paths of do_swap_page() run
 *      (skip-swapcache and swap cache), then read back under injection.
 *      The holder re-reads its shared half afterwards, also when the child
 *      died first.
 *  uffd.copy_fail_page_alloc.resolve  (uffd_copy_fail_page_alloc)
 *      a thread reads a MISSING-registered range; a handler thread (the only
 *      injected task) resolves it with UFFDIO_COPY, 4 pages a call (one
 *      folio each), retries ENOMEM and EAGAIN and follows partial copies by
 *      their "copy" field.
 *  uffd.copy_failslab.resolve  (uffd_copy_failslab)
 *      the same, one page per 2 MiB and the handler filling the next page
 *      ahead of the fault, each touched page in a VMA of its own (a
 *      PROT_NONE page between two keeps them from merging). The slab
 *      objects are the anon_vma and anon_vma_chain that the first ioctl
 *      into a VMA allocates (mm/userfaultfd.c uffd_lock_vma() -> mm/rmap.c
 *      __anon_vma_prepare()): in one VMA that was two draws a run, 0
 *      injected 81% of the time at 10%. A page table is no slab object
 *      here: its split ptlock (mm/memory.c ptlock_alloc()) needs
 *      CONFIG_SPLIT_PTE_PTLOCKS, which mm/Kconfig ties to NR_CPUS >= 4 (the
 *      debug guest has 2).
 *  uffd.zeropage_fail_page_alloc.resolve  (uffd_zeropage_fail_page_alloc)
 *      the same stride, in one VMA, with UFFDIO_ZEROPAGE, whose only page
 *      allocation is the page table.
 *
 * Processes: the harness runs each case in a process group of its own and
 * kills that group at its timeout. The case's process ("supervisor") arms
 * the facility, forks the "case child" that injects itself (and, in the
 * swap cases, forks the holder), waits for them up to -t + 5 seconds, reads
 * back how many failures were injected, reports and judges. The case child
 * and the holder write what they saw into a MAP_SHARED page of the
 * supervisor; the supervisor adds its case's counts to a MAP_SHARED page
 * that main() maps before the harness runs, from which main() prints the
 * closing summary.
 *
 * Output is kselftest TAP from kselftest_harness.h. "# <case>: ..." lines
 * give per case how many pages were swapped out / read back / bad, the
 * ioctl errno counts, how many failures were injected (read from the
 * "times" budget, which lib/fault-inject.c should_fail_ex() decrements once
 * per failure) and how the case child ended ("outcome: ..."). After the
 * harness's totals, if any case ran, come three lines, printed once by
 * main():
 *  "# injected page_alloc=N slab=N (<case>=N ...)": summed over the cases,
 *      then per case ("skip" for a case skipped or not selected, "?" if its
 *      count is unknown: unreadable, or the harness killed the case);
 *  "# volume injected page_alloc=N slab=N copy_calls=N zeropage_calls=N":
 *      the lab copies it into its report (lab/src/results.rs, "# volume ");
 *      a facility whose count is unknown is left out;
 *  "# outcomes ...": how the case children ended (a case the harness killed
 *      at its timeout counts as timeout), and every errno of
 *      UFFDIO_COPY/UFFDIO_ZEROPAGE by name.
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
 * A case is SKIPped only when its debugfs directory (the reason names the
 * CONFIG_ options), swap, or userfaultfd(2) is missing. Exit status is the
 * harness's: 0 if no case failed, 1 if one did (4 for the harness's -l and
 * -h, which run nothing); -h exits 0, a bad option 1.
 *
 * Timeouts: -t is the case child's budget (its alarm; the uffd handler
 * gives up 2 s before it, so that its counts are reported); the supervisor
 * kills the child and the holder at -t + 5 s and still reports. The
 * harness's own per-case timeout, -t + TIMEOUT_MARGIN, is for a supervisor
 * that hangs itself (see TIMEOUT_MARGIN).
 *
 * Usage: fault_inject [-p PERCENT] [-n PAGES] [-t SECONDS] [-D DIR]
 *                     [-- HARNESS_OPTIONS]
 *   -p  failure probability in percent (default 10; 0 is a control run)
 *   -n  pages per case (default 2048, 8 MiB)
 *   -t  timeout per case in seconds (default 30)
 *   -D  debugfs root (default /sys/kernel/debug). With -D, make-it-fail is
 *       written to DIR/make-it-fail instead of /proc, so a fake tree (or an
 *       empty directory, to see the SKIP paths) never touches the running
 *       kernel's fault injection: a tree of regular files runs every case
 *       without injection.
 *   after --, kselftest_harness.h's options: -l lists the cases, -r
 *       fixture.variant.test runs one, -f/-v/-t select by fixture, variant
 *       or test name (-F/-V/-T exclude), e.g.
 *       fault_inject -t 20 -- -r uffd.copy_failslab.resolve
 *
 * Restoring: each case sets probability back to 0 as soon as its child is
 * gone and restores every knob it changed in its teardown. A case that the
 * harness killed at its timeout cannot: the next case's setup and main(),
 * at exit and on SIGINT/TERM/HUP/QUIT and crash signals (after killing the
 * running case's process group), restore whatever is still armed, so later
 * tests in the same guest see no injection.
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
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "guest_util.h"
#include "vm_util.h"
#include "kselftest_harness.h"

#define DEFAULT_DEBUGFS		"/sys/kernel/debug"
#define DEFAULT_PAGES		2048
#define DEFAULT_PERCENT		10
#define DEFAULT_TIMEOUT		30
#define MAX_PAGES		16384

/*
 * The harness's timeout per case is -t plus this: the supervisor waits up
 * to -t + 5 s for the case child and the holder, then disarms, reads
 * debugfs and reports, which a KASAN + lockdep kernel under QEMU TCG (4-6
 * times slower) does in well under the other 15 s. With the plan's -t 30
 * that is 50 s a case, 250 s for the five: inside the guest's 300 s.
 */
#define TIMEOUT_MARGIN		20

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
	const char *name;	/* in "# <case>:" lines and the summary */
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

/* The harness runs them in this order (the FIXTURE_VARIANT_ADD()s below). */
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

/* What a case child and its holder report, in a MAP_SHARED page. */
struct case_result {
	char msg[320];			/* first problem seen */
	/* swap cases */
	unsigned long swapped_sole, swapped_shared, present;
	long majflt;
	pid_t holder_pid;		/* 0 once the case child reaped it */
	int holder_ran;			/* 1: after "go", 2: after the child died */
	unsigned long holder_checked, holder_bad;
	/* all cases */
	unsigned long checked, bad;
	/* uffd cases */
	int handler_failed;
	unsigned long events, dup_events, calls, ok, partial, max_tries;
	unsigned long err[ERRNO_SLOTS];
};

/* How a case child ended, for the "# outcomes" line. */
enum outcome {
	OUT_NONE,	/* no child: the case failed before forking it */
	OUT_RUNNING,	/* forked; still so at the end: the harness killed the case */
	OUT_CLEAN,	/* exit 0 after reading every page */
	OUT_EXIT,	/* another exit, or exit 0 short of pages */
	OUT_SIGKILL,
	OUT_SIGBUS,
	OUT_OTHER_SIG,
	OUT_TIMEOUT,
	OUT_WAIT_ERROR,
};

/* A case's share of the closing summary. */
struct case_summary {
	bool ran;			/* got past its SKIP checks */
	long injected;			/* -1: unknown */
	int outcome;			/* enum outcome */
	unsigned long calls, ok, partial, err[ERRNO_SLOTS];
};

/*
 * MAP_SHARED, mapped by main() before the harness forks anything: the
 * cases write it, main() reads it at exit and in its signal handlers.
 */
struct run_state {
	volatile pid_t running;	/* process group of the case running, or 0 */
	volatile sig_atomic_t armed[NR_FACILITIES];	/* a case set its knobs */
	bool started;		/* a case ran: print the header and summary */
	struct case_summary c[NR_CASES];
};

/* Set by main() before the harness runs, read-only afterwards. */
static unsigned int opt_percent = DEFAULT_PERCENT;
static unsigned long opt_pages = DEFAULT_PAGES;
static unsigned int opt_timeout = DEFAULT_TIMEOUT;
static const char *opt_debugfs = DEFAULT_DEBUGFS;
static bool fake_tree;		/* -D given: never touch /proc make-it-fail */
static size_t page_size;
static size_t words_per_page;
static char mif_fake_path[PATH_MAX];
static pid_t main_pid;
static struct run_state *shared;

/* Each facility's knobs as main() found them, and what kept it from it. */
struct saved_knob {
	char path[PATH_MAX];
	char value[32];
};

static struct saved_knob saved[NR_FACILITIES][16];
static size_t nr_saved[NR_FACILITIES];
static char saved_err[NR_FACILITIES][PATH_MAX + 64];
static char probability_path[NR_FACILITIES][PATH_MAX];

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

/* ---- arming a facility ---- */

static bool facility_present(enum facility f, char *reason, size_t size)
{
	char path[PATH_MAX];

	knob_path(path, f, "probability");
	if (access(path, W_OK) == 0)
		return true;
	snprintf(reason, size,
		 "no %s/%s (needs debugfs, CONFIG_FAULT_INJECTION_DEBUG_FS and %s)",
		 opt_debugfs, facility_dir[f],
		 f == FAIL_PAGE_ALLOC ? "CONFIG_FAIL_PAGE_ALLOC" : "CONFIG_FAILSLAB");
	return false;
}

/* main(), before any case: the values to restore, for the cases and itself. */
static void save_knobs(void)
{
	bool any = false;
	char reason[PATH_MAX + 128];
	int f;
	size_t i;

	for (f = 0; f < NR_FACILITIES; f++) {
		const struct knob *k = facility_knobs[f];

		knob_path(probability_path[f], f, "probability");
		if (!facility_present(f, reason, sizeof(reason)))
			continue;
		any = true;
		for (i = 0; i < facility_nr_knobs[f]; i++) {
			struct saved_knob *s = &saved[f][i];

			knob_path(s->path, f, k[i].name);
			if (read_str(s->path, s->value, sizeof(s->value))) {
				snprintf(saved_err[f], sizeof(saved_err[f]), "read %s: %s",
					 s->path, strerror(errno));
				break;
			}
			nr_saved[f]++;
		}
	}
	/* Ours could only be 1 if inherited; every case's processes inherit it. */
	if (any && !fake_tree)
		write_str("/proc/self/make-it-fail", "0");
}

/* Probability to 0 first, then the knobs as main() found them. */
static void restore_facility(enum facility f)
{
	size_t i;

	write_str(probability_path[f], "0");
	for (i = 0; i < nr_saved[f]; i++)
		write_str(saved[f][i].path, saved[f][i].value);
	shared->armed[f] = 0;
}

/*
 * Whatever is still armed: main() at exit and on signals, and a case's
 * setup after a case the harness killed. Async-signal-safe.
 */
static void restore_injection(void)
{
	bool any = false;
	int f;

	/* First stop injecting everywhere, then put the knobs back. */
	for (f = 0; f < NR_FACILITIES; f++) {
		if (shared->armed[f]) {
			write_str(probability_path[f], "0");
			any = true;
		}
	}
	for (f = 0; f < NR_FACILITIES; f++)
		if (shared->armed[f])
			restore_facility(f);
	/*
	 * Only a case child ever sets make-it-fail, and it is gone; clear
	 * ours anyway, so that nothing forked from here later could inherit
	 * it (kernel/fork.c copies task_struct whole).
	 */
	if (any && !fake_tree)
		write_str("/proc/self/make-it-fail", "0");
}

static int arm_facility(enum facility f, char *why, size_t size)
{
	const struct knob *k = facility_knobs[f];
	char path[PATH_MAX], val[16];
	size_t i;

	if (saved_err[f][0]) {
		snprintf(why, size, "%s", saved_err[f]);
		return -1;
	}
	shared->armed[f] = 1;
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

/* ---- signals ---- */

static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				     SIGSEGV, SIGBUS, SIGABRT, SIGFPE };

/* main() only: stop the running case, restore, die of the signal. */
static void on_fatal(int sig)
{
	pid_t pg = shared->running;

	if (getpid() == main_pid) {
		if (pg > 0 && pg != getpgrp())
			kill(-pg, SIGKILL);
		restore_injection();
	}
	/* SA_RESETHAND: the default action runs on re-raise. */
	raise(sig);
}

static void install_signals(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	for (i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaction(fatal_signals[i], &sa, NULL);
}

/* A case's processes: main()'s handlers are not theirs. */
static void reset_signals(void)
{
	sigset_t none;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		signal(fatal_signals[i], SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
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

static void format_errnos(char *buf, size_t size, const unsigned long *hist)
{
	size_t len = 0;
	int e;

	buf[0] = '\0';
	for (e = 0; e < ERRNO_SLOTS && len < size; e++) {
		if (!hist[e])
			continue;
		len += snprintf(buf + len, size - len, " %s=%lu",
				e ? (strerrorname_np(e) ?: "E?") : "other", hist[e]);
	}
	if (!buf[0])
		snprintf(buf, size, " none");
}

/* ---- swapin: the case child and the holder ---- */

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
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	unsigned long i;

	*swapped = 0;
	if (fd < 0)
		return -1;
	for (i = first; i < first + nr; i++) {
		/* vm_util.c: a short read ends the case child, exit 1. */
		uint64_t ent = pagemap_get_entry(fd, area + i * page_size);

		if (ent & PM_SWAP)
			(*swapped)++;
		else if (ent & PM_PRESENT)
			(*present)++;
	}
	close(fd);
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
	 * (below). The supervisor adopts it then (a subreaper), waits for it
	 * and kills it at its deadline, and the harness kills the case's
	 * process group at its timeout; this alarm is only for a supervisor
	 * and harness that were SIGKILLed themselves.
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
	r->holder_pid = pid;
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
	r->holder_pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		if (!r->holder_bad)
			result_msg(r, "holder ended with status %#x", status);
		return 4;
	}
	return r->bad ? 1 : 0;
}

/* ---- uffd: the case child's faulting and handler threads ---- */

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
					     first, strerrorname_np(e) ?: "E?", done, len);
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
				     first, strerrorname_np(e) ?: "E?", done);
			return -1;
		}
		if (e != ENOMEM && e != EAGAIN) {
			const char *why = e == EEXIST ?
				" (a page this handler never installed is present)" : "";

			handler_fail(c, "page %lu: unexpected %s from %s%s", first,
				     strerrorname_np(e) ?: "E?",
				     c->zeropage ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
				     why);
			return -1;
		}
		if (++tries >= MAX_TRIES) {
			handler_fail(c, "page %lu: still %s after %d tries",
				     first, strerrorname_np(e) ?: "E?", MAX_TRIES);
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
	pthread_t faulter, handler;
	pthread_attr_t attr;
	uint64_t ioctls = 0, need;
	size_t vlen;
	void *stack;
	int ret;

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
	c.uffd = uffd_open_api(O_CLOEXEC | O_NONBLOCK, 0);
	if (c.uffd < 0) {
		result_msg(r, "userfaultfd or UFFDIO_API: %s", strerror(-c.uffd));
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
	ret = uffd_register_with_ioctls(c.uffd, c.area, vlen, true, false, false,
					&ioctls);
	if (ret) {
		result_msg(r, "UFFDIO_REGISTER: %s", strerror(-ret));
		return 3;
	}
	need = (uint64_t)1 << (c.zeropage ? _UFFDIO_ZEROPAGE : _UFFDIO_COPY);
	if (!(ioctls & need)) {
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

/* ---- the supervisor: a case's own process ---- */

static bool uffd_available(char *reason, size_t size)
{
	int fd = uffd_open(O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	snprintf(reason, size, "userfaultfd(2): %s%s", strerror(-fd),
		 fd == -ENOSYS ? " (CONFIG_USERFAULTFD off)" : "");
	return false;
}

/* The case child and a holder that may still live (same process group). */
static void kill_case_child(pid_t pid, const struct case_result *r)
{
	pid_t holder_pid = r->holder_pid;

	if (pid > 0)
		kill(pid, SIGKILL);
	if (holder_pid > 0)
		kill(holder_pid, SIGKILL);
}

/*
 * Waits for the case child, then for the holder it may have left behind,
 * up to secs in all; kills them on timeout. *rest_status: how the holder
 * ended if this process had to reap it and it ended abnormally, else 0.
 */
static int wait_child(pid_t pid, struct case_result *r, unsigned int secs,
		      bool *timed_out, int *rest_status)
{
	struct timespec tick = { .tv_nsec = 20 * 1000 * 1000 }, deadline;
	int status = 0, st, err;
	pid_t ret;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += secs;
	*timed_out = false;
	*rest_status = 0;
	for (;;) {
		ret = waitpid(pid, &status, WNOHANG);
		if (ret == pid)
			break;
		if (ret < 0 && errno != EINTR) {
			err = errno;
			kill_case_child(pid, r);
			while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
				;
			errno = err;
			return -1;
		}
		if (past_deadline(&deadline)) {
			*timed_out = true;
			kill_case_child(pid, r);
			waitpid(pid, &status, 0);
			break;
		}
		nanosleep(&tick, NULL);
	}
	/*
	 * A child that ended without waiting for its holder (a signal, an
	 * early return) left it to us (subreaper; reparented before the
	 * child's exit status is reapable): it re-reads its half on EOF, let
	 * it finish.
	 */
	while (!*timed_out) {
		ret = waitpid(-1, &st, WNOHANG);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			break;		/* ECHILD: nobody left */
		if (ret > 0) {
			if (ret == r->holder_pid)
				r->holder_pid = 0;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				*rest_status = st;
			continue;
		}
		if (past_deadline(&deadline)) {
			*timed_out = true;
			break;
		}
		nanosleep(&tick, NULL);
	}
	/* Reap whatever is left. */
	kill_case_child(0, r);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
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

/* Prints the "outcome:" line; returns what it counts as (enum outcome). */
static int report_outcome(const struct test_case *tc, const struct case_result *r,
			  int status, int wait_errno, bool timed_out)
{
	int code, sig;

	if (status == -1) {
		ksft_print_msg("%s: waitpid: %s\n", tc->name, strerror(wait_errno));
		return OUT_WAIT_ERROR;
	}
	if (timed_out || (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)) {
		ksft_print_msg("%s: outcome: timeout (no result within %u s)\n",
			       tc->name, opt_timeout);
		return OUT_TIMEOUT;
	}
	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		ksft_print_msg("%s: outcome: child exited %d\n", tc->name, code);
		return code == 0 && r->checked == opt_pages ? OUT_CLEAN : OUT_EXIT;
	}
	sig = WTERMSIG(status);
	ksft_print_msg("%s: outcome: killed by signal %d (%s) after %lu pages\n",
		       tc->name, sig, strsignal(sig), r->checked);
	return sig == SIGKILL ? OUT_SIGKILL : sig == SIGBUS ? OUT_SIGBUS : OUT_OTHER_SIG;
}

/* The fixture data of both fixtures. */
struct case_state {
	const struct test_case *tc;
	struct case_result *r;	/* MAP_SHARED with the case child and holder */
	bool armed;		/* this case wrote its facility's knobs */
};

static void case_setup(struct __test_metadata *_metadata, struct case_state *st,
		       const struct test_case *tc)
{
	struct case_summary *cs = &shared->c[tc - cases];
	char reason[1024];	/* the harness's SKIP reason is as long */

	reset_signals();
	st->tc = tc;
	if (!shared->started) {
		shared->started = true;
		ksft_print_msg("fault_inject: %lu pages per case, probability %u%%, %u s per case, debugfs %s%s\n",
			       opt_pages, opt_percent, opt_timeout, opt_debugfs,
			       fake_tree ? " (not the kernel's: nothing is injected)" : "");
	}
	if (!facility_present(tc->facility, reason, sizeof(reason)))
		SKIP(return, "%s", reason);
	if (tc->kind == SWAPIN && !swap_active())
		SKIP(return, "no active swap (/proc/swaps is empty)");
	if (tc->kind != SWAPIN && !uffd_available(reason, sizeof(reason)))
		SKIP(return, "%s", reason);

	cs->ran = true;
	cs->injected = -1;
	cs->outcome = OUT_NONE;
	/* Left armed by a case that the harness killed at its timeout. */
	restore_injection();
	shared->running = getpgrp();
	/*
	 * An orphaned holder is reparented to us, to finish its re-read and
	 * be reaped (wait_child()).
	 */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
	st->r = mmap(NULL, sizeof(*st->r), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, st->r) {
		st->r = NULL;
		TH_LOG("%s: mmap: %s", tc->name, strerror(errno));
	}
}

static void case_teardown(struct case_state *st)
{
	if (st->armed)
		restore_facility(st->tc->facility);
	if (st->r)
		munmap(st->r, sizeof(*st->r));
	shared->running = 0;
}

static void run_case(struct __test_metadata *_metadata, struct case_state *st)
{
	const struct test_case *tc = st->tc;
	struct case_summary *cs = &shared->c[tc - cases];
	struct case_result *r = st->r;
	char why[PATH_MAX + 128];
	int status, rest_status, wait_errno, outcome, e;
	bool timed_out;
	long injected;
	pid_t pid;

	/*
	 * Armed before the fork: with task-filter=Y nothing fails until the
	 * child (or its handler thread) sets its own make-it-fail, after its
	 * setup, and disarmed as soon as it is gone.
	 */
	memset(r, 0, sizeof(*r));
	e = arm_facility(tc->facility, why, sizeof(why));
	st->armed = shared->armed[tc->facility];
	ASSERT_EQ(0, e) {
		disarm_facility(tc->facility);
		TH_LOG("%s: setting up %s: %s", tc->name, facility_dir[tc->facility],
		       why);
	}

	cs->outcome = OUT_RUNNING;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_NE(-1, pid) {
		disarm_facility(tc->facility);
		cs->outcome = OUT_NONE;
		TH_LOG("%s: fork: %s", tc->name, strerror(errno));
	}
	if (pid == 0) {
		/* A hang fails the case, and still gets it reported. */
		alarm(opt_timeout);
		_exit(tc->kind == SWAPIN ? swap_child(tc, r) : uffd_child(tc, r));
	}
	status = wait_child(pid, r, opt_timeout + 5, &timed_out, &rest_status);
	wait_errno = errno;
	injected = disarm_facility(tc->facility);

	if (tc->kind == SWAPIN) {
		report_swap(tc, r);
	} else {
		report_uffd(tc, r);
		cs->calls = r->calls;
		cs->ok = r->ok;
		cs->partial = r->partial;
		for (e = 0; e < ERRNO_SLOTS; e++)
			cs->err[e] = r->err[e];
	}
	cs->injected = injected;
	if (injected >= 0)
		ksft_print_msg("%s: injected %s failures: %ld\n", tc->name,
			       facility_short[tc->facility], injected);
	else
		ksft_print_msg("%s: could not read %s/times back\n", tc->name,
			       facility_dir[tc->facility]);
	outcome = report_outcome(tc, r, status, wait_errno, timed_out);
	cs->outcome = outcome;
	if (r->msg[0])
		ksft_print_msg("%s: %s\n", tc->name, r->msg);

	EXPECT_EQ(0UL, r->bad) {
		TH_LOG("%s: %lu of %lu pages read back bad", tc->name, r->bad, r->checked);
	}
	if (tc->kind == SWAPIN) {
		EXPECT_EQ(0UL, r->holder_bad) {
			TH_LOG("%s: the holder read %lu of its pages back bad", tc->name,
			       r->holder_bad);
		}
		/*
		 * The holder's re-read is the only check of the swap-cache
		 * half that the injected child may not have reached: without
		 * all of it, half the pages could be lost unseen.
		 */
		EXPECT_EQ(opt_pages - opt_pages / 2, r->holder_checked) {
			TH_LOG("%s: holder re-read %lu of its %lu pages%s", tc->name,
			       r->holder_checked, opt_pages - opt_pages / 2,
			       r->holder_ran ? "" : " (never released)");
		}
	}
	EXPECT_EQ(0, rest_status) {
		TH_LOG("%s: holder ended with status %#x", tc->name, rest_status);
	}
	/*
	 * SIGKILL and SIGBUS fail too: no injected failure leads to either
	 * (see swap_child()), and the uffd cases' faulting thread is not
	 * injected at all. A real OOM kill in an 8 MiB test would be worth a
	 * look as well.
	 */
	EXPECT_EQ(OUT_CLEAN, outcome) {
		TH_LOG("%s: no clean exit after all %lu pages (see the outcome line)",
		       tc->name, opt_pages);
	}
	/*
	 * On the kernel's debugfs a case that injected nothing proved
	 * nothing, and a knob or filter that stopped matching would pass
	 * every case. A fake tree (-D) injects nothing; -p 0 is the control.
	 */
	if (!fake_tree && opt_percent > 0) {
		if (injected == 0 && tc->none_expected) {
			ksft_print_msg("%s: %s\n", tc->name, tc->none_expected);
		} else {
			EXPECT_NE(-1L, injected) {
				TH_LOG("%s: injection not shown: %s/times unreadable",
				       tc->name, facility_dir[tc->facility]);
			}
			EXPECT_NE(0L, injected) {
				TH_LOG("%s: injection did not happen: 0 %s failures at probability %u%%",
				       tc->name, facility_short[tc->facility], opt_percent);
			}
		}
	}
}

/* ---- the cases ---- */

FIXTURE(swapin) {
	struct case_state st;
};

FIXTURE_VARIANT(swapin) {
	const struct test_case *tc;
};

FIXTURE_VARIANT_ADD(swapin, fail_page_alloc) {
	.tc = &cases[0],
};

FIXTURE_VARIANT_ADD(swapin, failslab) {
	.tc = &cases[1],
};

FIXTURE_SETUP(swapin)
{
	case_setup(_metadata, &self->st, variant->tc);
}

FIXTURE_TEARDOWN(swapin)
{
	case_teardown(&self->st);
}

/* -t + TIMEOUT_MARGIN in the end: main() sets it from -t. */
TEST_F_TIMEOUT(swapin, read_back, DEFAULT_TIMEOUT + TIMEOUT_MARGIN)
{
	run_case(_metadata, &self->st);
}

FIXTURE(uffd) {
	struct case_state st;
};

FIXTURE_VARIANT(uffd) {
	const struct test_case *tc;
};

FIXTURE_VARIANT_ADD(uffd, copy_fail_page_alloc) {
	.tc = &cases[2],
};

FIXTURE_VARIANT_ADD(uffd, copy_failslab) {
	.tc = &cases[3],
};

FIXTURE_VARIANT_ADD(uffd, zeropage_fail_page_alloc) {
	.tc = &cases[4],
};

FIXTURE_SETUP(uffd)
{
	case_setup(_metadata, &self->st, variant->tc);
}

FIXTURE_TEARDOWN(uffd)
{
	case_teardown(&self->st);
}

TEST_F_TIMEOUT(uffd, resolve, DEFAULT_TIMEOUT + TIMEOUT_MARGIN)
{
	run_case(_metadata, &self->st);
}


/* ---- main ---- */

static void __attribute__((format(printf, 3, 4)))
append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	if (len + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/* After the harness's totals: the closing lines, from every case's share. */
static void print_summary(void)
{
	static unsigned long copy_err[ERRNO_SLOTS], zp_err[ERRNO_SLOTS];
	unsigned long injected_total[NR_FACILITIES] = { 0 };
	bool injected_known[NR_FACILITIES] = { false };
	unsigned long copy_calls = 0, copy_ok = 0, copy_partial = 0;
	unsigned long zp_calls = 0, zp_ok = 0, zp_partial = 0;
	unsigned int out[OUT_WAIT_ERROR + 1] = { 0 };
	char line[2048], errs[512];
	size_t i;
	int e;

	for (i = 0; i < NR_CASES; i++) {
		const struct case_summary *cs = &shared->c[i];
		bool zp = cases[i].kind == UFFD_ZEROPAGE;

		if (!cs->ran)
			continue;
		if (cs->injected >= 0) {
			injected_total[cases[i].facility] += cs->injected;
			injected_known[cases[i].facility] = true;
		}
		out[cs->outcome]++;
		if (cases[i].kind == SWAPIN)
			continue;
		*(zp ? &zp_calls : &copy_calls) += cs->calls;
		*(zp ? &zp_ok : &copy_ok) += cs->ok;
		*(zp ? &zp_partial : &copy_partial) += cs->partial;
		for (e = 0; e < ERRNO_SLOTS; e++)
			(zp ? zp_err : copy_err)[e] += cs->err[e];
	}

	line[0] = '\0';
	append(line, sizeof(line), "injected");
	for (i = 0; i < NR_FACILITIES; i++) {
		if (injected_known[i])
			append(line, sizeof(line), " %s=%lu", facility_short[i],
			       injected_total[i]);
		else
			append(line, sizeof(line), " %s=?", facility_short[i]);
	}
	/* Per case too: a sum hides the case that injected nothing. */
	for (i = 0; i < NR_CASES; i++) {
		append(line, sizeof(line), "%s%s=", i ? " " : " (", cases[i].name);
		if (!shared->c[i].ran)
			append(line, sizeof(line), "skip");
		else if (shared->c[i].injected >= 0)
			append(line, sizeof(line), "%ld", shared->c[i].injected);
		else
			append(line, sizeof(line), "?");
	}
	ksft_print_msg("%s)\n", line);

	/* One line the lab copies into its report (lab/src/results.rs). */
	line[0] = '\0';
	append(line, sizeof(line), "volume injected");
	for (i = 0; i < NR_FACILITIES; i++)
		if (injected_known[i])
			append(line, sizeof(line), " %s=%lu", facility_short[i],
			       injected_total[i]);
	ksft_print_msg("%s copy_calls=%lu zeropage_calls=%lu\n", line, copy_calls,
		       zp_calls);

	/* The harness killed a case still OUT_RUNNING, at its timeout. */
	line[0] = '\0';
	format_errnos(errs, sizeof(errs), copy_err);
	append(line, sizeof(line),
	       "outcomes children: clean=%u sigkill=%u sigbus=%u other_signal=%u timeout=%u;"
	       " UFFDIO_COPY: calls=%lu ok=%lu partial=%lu errors:%s;",
	       out[OUT_CLEAN], out[OUT_SIGKILL], out[OUT_SIGBUS], out[OUT_OTHER_SIG],
	       out[OUT_TIMEOUT] + out[OUT_RUNNING], copy_calls, copy_ok, copy_partial, errs);
	format_errnos(errs, sizeof(errs), zp_err);
	ksft_print_msg("%s UFFDIO_ZEROPAGE: calls=%lu ok=%lu partial=%lu errors:%s\n",
		       line, zp_calls, zp_ok, zp_partial, errs);
}

/* test_harness_run() ends in exit(): main()'s last word comes from here. */
static void at_exit(void)
{
	if (getpid() != main_pid)
		return;		/* a case's process that called exit() */
	restore_injection();
	if (shared->started)
		print_summary();
}

static void __attribute__((noreturn)) usage(const char *argv0, int code)
{
	fprintf(code ? stderr : stdout,
		"usage: %s [-p PERCENT] [-n PAGES] [-t SECONDS] [-D DEBUGFS_DIR]\n"
		"          [-- HARNESS_OPTIONS]\n"
		"  -p  injection probability, 0-100 (default %d)\n"
		"  -n  pages per case, 2-%d (default %d)\n"
		"  -t  timeout per case in seconds, 2-3600 (default %d;\n"
		"      the harness's own is %d s more)\n"
		"  -D  debugfs root (default %s); make-it-fail then goes to DIR/make-it-fail\n"
		"  after --: kselftest_harness.h's options, e.g. -l (list the cases),\n"
		"      -r FIXTURE.VARIANT.TEST (run one), -h (its help)\n",
		argv0, DEFAULT_PERCENT, MAX_PAGES, DEFAULT_PAGES,
		DEFAULT_TIMEOUT, TIMEOUT_MARGIN, DEFAULT_DEBUGFS);
	exit(code);
}

static unsigned long parse_num(const char *s, unsigned long min,
			       unsigned long max, const char *argv0)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage(argv0, KSFT_FAIL);
	return v;
}

int main(int argc, char **argv)
{
	char **hargv;
	int opt, hargc, i;

	/* "+": stop at the first non-option, and at "--". */
	while ((opt = getopt(argc, argv, "+p:n:t:D:h")) != -1) {
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
		case 'h':
			usage(argv[0], KSFT_PASS);
		default:
			usage(argv[0], KSFT_FAIL);
		}
	}
	/* What follows "--" is the harness's; nothing else may follow. */
	if (optind < argc && strcmp(argv[optind - 1], "--"))
		usage(argv[0], KSFT_FAIL);
	hargc = 1 + argc - optind;
	hargv = calloc(hargc + 1, sizeof(*hargv));
	if (!hargv)
		ksft_exit_fail_perror("calloc");
	hargv[0] = argv[0];
	for (i = 1; i < hargc; i++)
		hargv[i] = argv[optind + i - 1];

	page_size = psize();
	words_per_page = page_size / sizeof(uint64_t);
	snprintf(mif_fake_path, sizeof(mif_fake_path), "%s/make-it-fail",
		 opt_debugfs);
	main_pid = getpid();
	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		ksft_exit_fail_perror("mmap");
	save_knobs();
	harness_set_timeout(NULL, opt_timeout + TIMEOUT_MARGIN);
	install_signals();
	atexit(at_exit);

	/* 0: glibc starts its getopt() over, in its default mode. */
	optind = 0;
	return test_harness_run(hargc, hargv);
}
