// SPDX-License-Identifier: GPL-2.0
/*
 * fault_stress - seeded, time-bounded stress of page faults under the
 * per-VMA lock, with exact tracking of every page's expected content; and
 * userfaultfd's answers to bad input and to races with a waiting fault.
 *
 *   fault_stress [-s SEED] [-t SECONDS] [-j THREADS] [-v] [-- HARNESS OPTIONS]
 *
 *   -s SEED     replay a run: each stress thread draws its operations from
 *               a PRNG seeded from SEED (the interleaving of the threads is
 *               up to the scheduler). Default: from the clock and the pid.
 *   -t SECONDS  the run's time budget (default 10, 1 to 3600): stress.mixed
 *               runs for 90% of it; the other cases do a fixed amount of
 *               work, well under a second on a plain kernel.
 *   -j THREADS  stress.mixed's worker threads (default 4, 1 to 64)
 *   -v          also print the userfaultfd checks that passed
 *   after --    kselftest_harness.h's own options: -l lists the cases,
 *               -r FIXTURE[.VARIANT].TEST runs one, -t/-T TEST, -f/-F
 *               FIXTURE and -v/-V VARIANT include or exclude, -h says more.
 *               E.g. `fault_stress -t 5 -- -r stress.mixed`.
 *
 * Output is kselftest TAP from kselftest_harness.h, which runs each case in
 * a child of its own and kills it at its timeout; the exit code is the
 * harness's: 0 if no case failed (skipped ones included), 1 if one did (4
 * after -l or -h of the harness). Two diagnostic lines matter to the lab,
 * which copies them into its report (lab/src/results.rs):
 *   # seed SEED   first, once per run: main() picks the seed before the
 *                 harness forks any case, so every case uses this one (the
 *                 next line, "# fault_stress: ...", gives all parameters)
 *   # volume checks=N forks=N ... mismatches=N
 *                 once, at the end of stress.mixed (so not when -r picks
 *                 another case): how much the stress did
 * Also: "# mismatch ..." for the first ten pages whose content was not what
 * was written, "# error: ..." for an unexpected system call failure (both
 * fail stress.mixed), "# crash: ..." if stress.mixed itself takes SIGSEGV or
 * SIGBUS (below), and the harness's "# file:line:test:" logs of a failed
 * check.
 *
 * Every page that stress.mixed touches carries a 64-bit tag in its first and
 * last 8 bytes: magic | region | generation | page index | version. The
 * writer of a page records the tag in a per-page expected-state array, and
 * every read compares memory against that array, so a lost, stale, zeroed
 * or foreign page is a mismatch.
 *
 * Cases (names before kselftest_harness.h in brackets):
 *   stress.mixed          [stress_mixed] threads fault, verify, page out,
 *                         zap, mprotect, mremap, remap and fork over private
 *                         anon, shmem and userfaultfd (MISSING) regions
 *   uffd.api              [uffd_bad_input, part] the handshake and the fd:
 *                         what fs/userfaultfd.c refuses before and after
 *                         UFFDIO_API
 *   uffd.ranges           [uffd_bad_input, part] REGISTER, COPY, ZEROPAGE,
 *                         WAKE, WRITEPROTECT and UNREGISTER with bad ranges
 *                         and modes, against fs/ and mm/userfaultfd.c
 *   uffd_race.KIND.waiter [uffd_bad_input, part] a thread waits in a MISSING
 *                         fault while its range is unmapped (munmap), its
 *                         uffd closed (close) or unregistered (unregister),
 *                         or its page copied with DONTWAKE (copy_dontwake)
 * The fork-versus-fault race (fork_vs_fault) and the MADV_PAGEOUT/swap-in
 * check (pageout_swapin_verify), cases 2 and 4 here before, now live in the
 * series' own selftest, tools/testing/selftests/mm/vma_lock_faults.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "vm_util.h"
#include "guest_util.h"

/* The options: main() sets them before the harness forks; read-only after. */
static uint64_t run_seed;
static unsigned int run_seconds = 10;
static unsigned int nr_threads = 4;
static bool verbose;

/* stress.mixed runs for this share of -t. */
#define STRESS_PERCENT	90

/*
 * The harness's timeouts (it kills a case then and reports it not ok; its
 * default is 30 s). stress.mixed runs for its share of -t and then checks
 * every page, joins and unmaps: that tail takes well under a second on a
 * plain kernel, and a debug kernel (KASAN, lockdep) under QEMU TCG is 4 to
 * 6 times slower. 90 s more than its share covers that with a wide margin
 * (the whole run had -t + 90 s before kselftest_harness.h). main() sets it
 * from -t, through the object TEST_F_TIMEOUT() registers (the same in 6.12's
 * and mainline's harness); the constant below is for -t's default. For the
 * plan's `fault_stress -t 20` it is 108 s. The six uffd cases keep the
 * default 30 s: they take milliseconds but for race_child()'s waits, which
 * it bounds to 11 s in all. So even a run in which every case hangs ends
 * after 108 + 6 * 30 = 288 s, before the guest's 300 s.
 */
#define STRESS_TAIL	90
#define STRESS_TIMEOUT(secs)	((secs) * STRESS_PERCENT / 100 + STRESS_TAIL)

static const char *ename(int e)
{
	return e ? strerrorname_np(e) ?: "E?" : "success";
}

/*
 * A "# ..." line in one write(2): dprintf() keeps no stdio buffer that a
 * fork() could copy or that the harness's _exit() would drop, and the stress
 * prints from several threads and from forked checkers at once.
 */
#define say(fmt, ...) dprintf(STDOUT_FILENO, "# " fmt "\n", ##__VA_ARGS__)

/* ------------------------------------------------------------------ */
/* PRNG: splitmix64, one state per thread, derived from the run seed. */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int rnd(uint64_t *s, unsigned int n)
{
	return n ? (unsigned int)(splitmix64(s) % n) : 0;
}

/* Thread @idx's seed: as before kselftest_harness.h, so old seeds replay. */
static uint64_t seed_for(unsigned int idx)
{
	uint64_t s = run_seed ^ (0x632be59bd9b4e019ULL * (1000ULL + idx + 1));

	return splitmix64(&s);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* userfaultfd: 0 or -errno, the form the checks compare. */

static long neg_errno(long ret)
{
	return ret < 0 ? -errno : 0;
}

static long xioctl(int fd, unsigned long cmd, void *arg)
{
	return neg_errno(ioctl(fd, cmd, arg));
}

/*
 * A userfaultfd, with UFFDIO_API done if @api; user-mode only where a full
 * one is refused (vm.unprivileged_userfaultfd). -errno on failure.
 */
static int uffd_new(bool api)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = api ? uffd_open_api(flags, 0) : uffd_open(flags);

	if (fd == -EPERM) {
		flags |= UFFD_USER_MODE_ONLY;
		fd = api ? uffd_open_api(flags, 0) : uffd_open(flags);
	}
	return fd;
}

/* ================================================================== */
/* stress.mixed */

/*
 * Volume counters. They live in a MAP_SHARED page so that forked checkers
 * count into them too, and the "first 10 mismatch lines" limit holds across
 * processes. errors: unexpected system call failures.
 */
struct volume {
	atomic_ulong checks, forks, uffd_copy, uffd_zeropage, mmap, munmap,
		     mprotect, mremap, mremap_split, dontneed, pageout, mismatches;
	atomic_ulong mismatch_lines;
	atomic_ulong errors;
};
static struct volume *vol;

#define VOL_ADD(f, n) atomic_fetch_add_explicit(&vol->f, (n), memory_order_relaxed)
#define VOL_INC(f) VOL_ADD(f, 1)
#define MAX_MISMATCH_LINES 10

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	VOL_INC(errors);
	say("error: %s", buf);
}

static void report_mismatch(int region, unsigned long page, uint64_t expected,
			    uint64_t got, const char *op)
{
	VOL_INC(mismatches);
	if (atomic_fetch_add(&vol->mismatch_lines, 1) < MAX_MISMATCH_LINES)
		say("mismatch region=%d page=%lu expected=%#llx got=%#llx op=%s",
		    region, page, (unsigned long long)expected, (unsigned long long)got, op);
}

/* Tags: magic(8) | region(8) | gen(16) | page(16) | version(16). */
#define MIX_MAGIC	0xa5ULL
/* Never a tag (tags have a non-zero magic): the page is not populated. */
#define EXP_MISSING	1ULL

static uint64_t make_tag(uint64_t magic, unsigned int region, unsigned int gen,
			 unsigned int page, unsigned int ver)
{
	return magic << 56 | (uint64_t)(region & 0xff) << 48 |
	       (uint64_t)(gen & 0xffff) << 32 | (uint64_t)(page & 0xffff) << 16 |
	       (ver & 0xffff);
}

static unsigned int tag_magic(uint64_t t)  { return t >> 56; }
static unsigned int tag_region(uint64_t t) { return (t >> 48) & 0xff; }
static unsigned int tag_gen(uint64_t t)    { return (t >> 32) & 0xffff; }
static unsigned int tag_page(uint64_t t)   { return (t >> 16) & 0xffff; }

static volatile uint64_t *head_of(uintptr_t base, unsigned long p)
{
	return (volatile uint64_t *)(base + p * psize());
}

static volatile uint64_t *tail_of(uintptr_t base, unsigned long p)
{
	return (volatile uint64_t *)(base + (p + 1) * psize() - sizeof(uint64_t));
}

/* Mapping helpers that count the volume and note unexpected errors. */
static void *map_anon(size_t len, int prot, bool shared)
{
	void *p = mmap(NULL, len, prot, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED) {
		note_error("mmap(%zu): %s", len, ename(errno));
		return NULL;
	}
	VOL_INC(mmap);
	return p;
}

static void unmap(void *p, size_t len)
{
	if (munmap(p, len))
		note_error("munmap(%p, %zu): %s", p, len, ename(errno));
	else
		VOL_INC(munmap);
}

enum { R_PRIV, R_SHM, R_UFFD, R_KINDS };
static const char *const kind_name[R_KINDS] = { "private", "shmem", "uffd" };

#define MIX_PER_KIND	4
#define MIX_NREG	(R_KINDS * MIX_PER_KIND)
#define MIX_PAGES	256
#define CHUNK_PAGES	16
#define MIX_CHUNKS	(MIX_PAGES / CHUNK_PAGES)
#define FORK_SAMPLE	16

/*
 * Locking: map_lock (writer-preferring rwlock) is taken for read by anything
 * that touches pages and for write by operations that change the mapping
 * (mprotect, mremap, munmap+mmap). Pages are grouped in chunks; a chunk
 * lock gives one thread ownership of the pages' content and of their
 * expected state. So checks are exact, while other threads fault other
 * chunks of the same VMA and change the mappings of other regions.
 *
 * base is 0 while the region is being unmapped or moved: the uffd handler
 * (which takes no locks) maps a fault address to a region through it, and a
 * non-zero base always names a live mapping.
 */
struct region {
	pthread_rwlock_t map_lock;
	pthread_mutex_t chunk_lock[MIX_CHUNKS];
	int id;
	int kind;
	_Atomic uintptr_t base;
	atomic_uint gen;
	_Atomic uint64_t expect[MIX_PAGES];
	uint16_t ver[MIX_PAGES];	/* under the chunk lock */
};

static struct region mix[MIX_NREG];
static int mix_uffd = -1;
static atomic_bool mix_handler_stop;
static uint64_t mix_deadline;
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t next_fork_ns;
static atomic_bool pageout_unsupported;
static volatile sig_atomic_t in_child;	/* a forked checker */
static atomic_flag crashing = ATOMIC_FLAG_INIT;

static size_t mix_len(void)
{
	return MIX_PAGES * psize();
}

/*
 * A SIGSEGV or SIGBUS in this program means a mapping it relies on was not
 * there: a bug of the test or of the kernel. The harness reports the case
 * "not ok" for the signal; this says where, with the regions as the
 * program knows them and the mappings as the kernel does, so that the run
 * can be understood from the guest log alone. Only write(2) and read(2):
 * this runs in a signal handler. The first thread to crash reports, the
 * others wait; then the signal, raised again with its default action,
 * kills the process, for the harness to see.
 */
static void put_str(const char *s)
{
	ssize_t r = write(STDOUT_FILENO, s, strlen(s));

	(void)r;
}

static void put_hex(const char *label, unsigned long v)
{
	char buf[32];
	int i = sizeof(buf);

	buf[--i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v && i > 2);
	buf[--i] = 'x';
	buf[--i] = '0';
	put_str(label);
	put_str(&buf[i]);
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
	char maps[8192];
	ssize_t n;
	int i, fd;

	if (atomic_flag_test_and_set(&crashing))
		for (;;)
			pause();
	put_str(sig == SIGSEGV ? "# crash: SIGSEGV" : "# crash: SIGBUS");
	put_hex(" at ", (unsigned long)si->si_addr);
	put_hex(" code ", (unsigned long)si->si_code);
	put_str(in_child ? " in stress.mixed (forked checker)\n" : " in stress.mixed\n");
	for (i = 0; i < MIX_NREG; i++) {
		put_hex("# crash: region ", (unsigned long)i);
		put_hex(" kind ", (unsigned long)mix[i].kind);
		put_hex(" base ", (unsigned long)atomic_load(&mix[i].base));
		put_hex(" gen ", (unsigned long)atomic_load(&mix[i].gen));
		put_str("\n");
	}
	fd = open("/proc/self/maps", O_RDONLY);
	while (fd >= 0 && (n = read(fd, maps, sizeof(maps))) > 0) {
		ssize_t r = write(STDOUT_FILENO, maps, n);

		(void)r;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * uffd regions sit between two PROT_NONE guard pages. Without them, a
 * region moved by mremap() next to another region registered with the same
 * uffd merges with it in copy_vma(), and mremap_userfaultfd_prep() then
 * drops the registration of the whole merged VMA: the neighbour's missing
 * pages zero-fill instead of reaching the handler (seen on 6.12 and 6.18).
 * That is a real uffd wart, but not what this test is after.
 */
static size_t mix_guard(const struct region *r)
{
	return r->kind == R_UFFD ? psize() : 0;
}

static void mix_unmap(struct region *r, uintptr_t b)
{
	unmap((void *)(b - mix_guard(r)), mix_len() + 2 * mix_guard(r));
}

/* A new mapping for a region (registered with the uffd if it is one). */
static void *mix_new_mapping(struct region *r)
{
	size_t g = mix_guard(r);
	void *p;
	int e;

	if (g) {
		char *res = map_anon(mix_len() + 2 * g, PROT_NONE, false);

		if (!res)
			return NULL;
		p = mmap(res + g, mix_len(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED) {
			note_error("mmap(MAP_FIXED): %s", ename(errno));
			unmap(res, mix_len() + 2 * g);
			return NULL;
		}
	} else {
		p = map_anon(mix_len(), PROT_READ | PROT_WRITE, r->kind == R_SHM);
		if (!p)
			return NULL;
	}
	if (r->kind == R_UFFD) {
		e = uffd_register(mix_uffd, p, mix_len(), true, false, false);
		if (e)
			note_error("UFFDIO_REGISTER region %d: %s", r->id, ename(-e));
	}
	return p;
}

/* Install it: a new generation, content zero or (uffd) missing. */
static void mix_publish(struct region *r, void *p)
{
	unsigned int i;

	atomic_store(&r->gen, (atomic_load(&r->gen) + 1) & 0xffff);
	for (i = 0; i < MIX_PAGES; i++) {
		atomic_store_explicit(&r->expect[i], r->kind == R_UFFD ? EXP_MISSING : 0,
				      memory_order_relaxed);
		r->ver[i] = 0;
	}
	/* Publish last: the handler reads gen after seeing base. */
	atomic_store_explicit(&r->base, (uintptr_t)p, memory_order_release);
}

/* Called with the chunk (or the whole region) locked. */
static void mix_check_page(struct region *r, uintptr_t b, unsigned int p, const char *op)
{
	uint64_t h, t, e;
	char what[48];

	/* The first access may fault; a missing uffd page is resolved here. */
	h = *head_of(b, p);
	e = atomic_load_explicit(&r->expect[p], memory_order_acquire);
	t = *tail_of(b, p);
	VOL_INC(checks);
	if (e == EXP_MISSING) {
		/* A read of a missing page must have gone through the handler. */
		snprintf(what, sizeof(what), "%s-unresolved-%s", op, kind_name[r->kind]);
		report_mismatch(r->id, p, e, h, what);
	} else if (h != e) {
		snprintf(what, sizeof(what), "%s-%s", op, kind_name[r->kind]);
		report_mismatch(r->id, p, e, h, what);
	} else if (t != e) {
		snprintf(what, sizeof(what), "%s-%s-tail", op, kind_name[r->kind]);
		report_mismatch(r->id, p, e, t, what);
	}
}

static void mix_write_page(struct region *r, uintptr_t b, unsigned int p)
{
	uint64_t tag;

	/* Version 0 is the uffd COPY content; writes use 1..0xffff. */
	r->ver[p] = r->ver[p] % 0xffff + 1;
	tag = make_tag(MIX_MAGIC, r->id, atomic_load(&r->gen), p, r->ver[p]);
	*head_of(b, p) = tag;
	*tail_of(b, p) = tag;
	atomic_store_explicit(&r->expect[p], tag, memory_order_release);
}

/* The uffd handler: resolves MISSING faults, and records what it did. */
static struct region *mix_find_uffd(uintptr_t addr, uintptr_t *base)
{
	int i;

	for (i = 0; i < MIX_NREG; i++) {
		uintptr_t b = atomic_load_explicit(&mix[i].base, memory_order_acquire);

		if (mix[i].kind == R_UFFD && b && addr >= b && addr < b + mix_len()) {
			*base = b;
			return &mix[i];
		}
	}
	return NULL;
}

static void mix_resolve(uint64_t *rng, char *src, uintptr_t addr)
{
	const size_t ps = psize();
	bool copy = rnd(rng, 2);
	struct region *r;
	unsigned int p = 0;
	uintptr_t b = 0;
	long e;

	r = mix_find_uffd(addr, &b);
	if (r)
		p = (addr - b) / ps;
	else
		note_error("uffd handler: fault at %#lx in no uffd region", (unsigned long)addr);
	/*
	 * Record the expectation before resolving: the faulting thread reads
	 * it as soon as the ioctl wakes it.
	 */
	if (copy && r) {
		uint64_t tag = make_tag(MIX_MAGIC, r->id, atomic_load(&r->gen), p, 0);
		struct uffdio_copy c = { .dst = addr, .src = (uintptr_t)src, .len = ps };

		*(uint64_t *)src = tag;
		*(uint64_t *)(src + ps - 8) = tag;
		atomic_store_explicit(&r->expect[p], tag, memory_order_release);
		e = xioctl(mix_uffd, UFFDIO_COPY, &c);
		if (!e)
			VOL_INC(uffd_copy);
	} else {
		struct uffdio_zeropage z = { .range = { .start = addr, .len = ps } };

		if (r)
			atomic_store_explicit(&r->expect[p], 0, memory_order_release);
		e = xioctl(mix_uffd, UFFDIO_ZEROPAGE, &z);
		if (!e)
			VOL_INC(uffd_zeropage);
	}
	if (e) {
		/*
		 * Nothing else populates a page whose chunk the faulting
		 * thread holds: EEXIST is a kernel bug. Wake the thread
		 * anyway so nothing hangs.
		 */
		struct uffdio_range w = { .start = addr, .len = ps };

		note_error("uffd handler: %s at %#lx: %s",
			   copy && r ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE", (unsigned long)addr,
			   ename(-e));
		xioctl(mix_uffd, UFFDIO_WAKE, &w);
	}
}

static void *mix_uffd_handler(void *arg)
{
	uint64_t rng = seed_for(999);
	struct uffd_msg msgs[16];
	char *src;

	src = mmap(NULL, psize(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED) {
		note_error("uffd handler: mmap: %s", ename(errno));
		return NULL;
	}
	while (!atomic_load(&mix_handler_stop)) {
		struct pollfd pfd = { .fd = mix_uffd, .events = POLLIN };
		ssize_t n;
		int i, pr;

		/* A timeout, so the handler notices the stop flag. */
		pr = poll(&pfd, 1, 100);
		if (pr < 0 && errno != EINTR) {
			note_error("uffd handler: poll: %s", ename(errno));
			break;
		}
		if (pr <= 0)
			continue;
		if (pfd.revents & (POLLERR | POLLHUP)) {
			note_error("uffd handler: poll revents %#x", pfd.revents);
			break;
		}
		n = read(mix_uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			note_error("uffd handler: read: %s", ename(errno));
			break;
		}
		for (i = 0; i < (int)(n / (ssize_t)sizeof(msgs[0])); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				note_error("uffd handler: unexpected event %u", msgs[i].event);
			else
				mix_resolve(&rng, src, msgs[i].arg.pagefault.address &
						       ~(uintptr_t)(psize() - 1));
		}
	}
	munmap(src, psize());
	return NULL;
}

struct worker {
	pthread_t th;
	uint64_t rng;
};

/* Write or verify a run of pages of one chunk. */
static void op_pages(struct worker *w, struct region *r, bool write)
{
	unsigned int c, n, start, i;
	uintptr_t b;

	pthread_rwlock_rdlock(&r->map_lock);
	b = atomic_load(&r->base);
	c = rnd(&w->rng, MIX_CHUNKS);
	n = 1 + rnd(&w->rng, CHUNK_PAGES);
	start = rnd(&w->rng, CHUNK_PAGES);
	pthread_mutex_lock(&r->chunk_lock[c]);
	for (i = 0; i < n; i++) {
		unsigned int p = c * CHUNK_PAGES + (start + i) % CHUNK_PAGES;

		if (!write) {
			mix_check_page(r, b, p, "read");
		} else {
			/* Half the writes are blind: a first-touch write fault. */
			if (rnd(&w->rng, 2))
				mix_check_page(r, b, p, "pre-write");
			mix_write_page(r, b, p);
		}
	}
	pthread_mutex_unlock(&r->chunk_lock[c]);
	pthread_rwlock_unlock(&r->map_lock);
}

/*
 * MADV_PAGEOUT a range while other threads keep faulting pages of it: it
 * reclaims the range now (to zram when there is swap; without swap only
 * clean pages go), and content must survive swap-out and swap-in, so no
 * expectation changes. EINVAL means the kernel lacks it: stop asking.
 */
static void op_pageout(struct worker *w, struct region *r)
{
	unsigned int a = rnd(&w->rng, MIX_PAGES);
	unsigned int n = 1 + rnd(&w->rng, MIX_PAGES - a);
	int e = 0;

	if (atomic_load_explicit(&pageout_unsupported, memory_order_relaxed))
		return;
	pthread_rwlock_rdlock(&r->map_lock);
	if (madvise((void *)(atomic_load(&r->base) + a * psize()), n * psize(), MADV_PAGEOUT))
		e = errno;
	pthread_rwlock_unlock(&r->map_lock);
	if (!e)
		VOL_INC(pageout);
	else if (e != EINVAL)
		note_error("madvise(PAGEOUT): %s", ename(e));
	else if (!atomic_exchange(&pageout_unsupported, true))
		say("MADV_PAGEOUT: EINVAL, not supported: no pageouts");
}

/*
 * MADV_DONTNEED: private anon pages become zero, uffd pages missing again
 * (the next touch is a uffd fault), shmem pages keep their content (only
 * the PTEs go; the pages stay in the shmem object).
 */
static void op_dontneed(struct worker *w, struct region *r)
{
	unsigned int c = rnd(&w->rng, MIX_CHUNKS);
	unsigned int a = rnd(&w->rng, CHUNK_PAGES);
	unsigned int n = 1 + rnd(&w->rng, CHUNK_PAGES - a);
	unsigned int p, first = c * CHUNK_PAGES + a;
	uintptr_t b;

	pthread_rwlock_rdlock(&r->map_lock);
	b = atomic_load(&r->base);
	pthread_mutex_lock(&r->chunk_lock[c]);
	if (madvise((void *)(b + first * psize()), n * psize(), MADV_DONTNEED)) {
		note_error("madvise(DONTNEED): %s", ename(errno));
	} else {
		VOL_INC(dontneed);
		for (p = first; p < first + n; p++) {
			if (r->kind == R_PRIV)
				atomic_store(&r->expect[p], 0);
			else if (r->kind == R_UFFD)
				atomic_store(&r->expect[p], EXP_MISSING);
		}
		for (p = first; p < first + n; p++)
			mix_check_page(r, b, p, "after-dontneed");
	}
	pthread_mutex_unlock(&r->chunk_lock[c]);
	pthread_rwlock_unlock(&r->map_lock);
}

/* mprotect a sub-range read-only (splitting the VMA), read it, restore. */
static void op_mprotect(struct worker *w, struct region *r)
{
	unsigned int a = rnd(&w->rng, MIX_PAGES);
	unsigned int n = 1 + rnd(&w->rng, MIX_PAGES - a);
	unsigned int i;
	uintptr_t b;

	pthread_rwlock_wrlock(&r->map_lock);
	b = atomic_load(&r->base);
	if (mprotect((void *)(b + a * psize()), n * psize(), PROT_READ)) {
		note_error("mprotect(RO): %s", ename(errno));
	} else {
		VOL_INC(mprotect);
		for (i = 0; i < 8 && i < n; i++)
			mix_check_page(r, b, a + rnd(&w->rng, n), "mprotect-ro");
		if (mprotect((void *)(b + a * psize()), n * psize(), PROT_READ | PROT_WRITE))
			note_error("mprotect(RW): %s", ename(errno));
		else
			VOL_INC(mprotect);
	}
	pthread_rwlock_unlock(&r->map_lock);
}

/*
 * How many VMAs of /proc/self/maps cover [start, end): a region that
 * mprotect() split is not always merged again when its protection is
 * restored (mm/vma.c refuses to merge parts whose anon_vma or userfaultfd
 * context differ), and mremap() refuses to move a range that spans several
 * VMAs with EFAULT (mm/mremap.c vma_to_resize()). Seen in the guest:
 * "mremap: EFAULT". Returns 0 if the maps cannot be read.
 */
static unsigned int vmas_in_range(uintptr_t start, uintptr_t end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;
	unsigned int n = 0;
	char line[512];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < end && hi > start)
			n++;
	fclose(f);
	return n;
}

/*
 * mremap to a new address (MREMAP_FIXED over a placeholder, so it surely
 * moves). Contents follow. Without UFFD_FEATURE_EVENT_REMAP the moved VMA
 * loses its uffd registration (mremap_userfaultfd_prep()), so register the
 * new range again before anyone touches it.
 */
static void op_mremap(struct worker *w, struct region *r)
{
	size_t len = mix_len(), g = mix_guard(r);
	unsigned int i, vmas;
	uintptr_t old;
	char *ph;
	void *np;
	int e;

	pthread_rwlock_wrlock(&r->map_lock);
	old = atomic_load(&r->base);
	/*
	 * A split region: mremap() would refuse it with EFAULT, but only after
	 * MREMAP_FIXED has unmapped the destination, whose hole another
	 * thread's mmap() may take at once. Nothing else changes this region's
	 * VMAs while we hold its lock, so ask first.
	 */
	vmas = vmas_in_range(old, old + len);
	if (vmas > 1) {
		VOL_INC(mremap_split);
		goto out;
	}
	ph = map_anon(len + 2 * g, PROT_NONE, false);
	if (!ph)
		goto out;
	atomic_store(&r->base, 0);
	np = mremap((void *)old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, ph + g);
	if (np == MAP_FAILED) {
		note_error("mremap: %s (region in %u VMAs)", ename(errno), vmas);
		/*
		 * The middle of the placeholder may be unmapped already and
		 * reused by another thread: leave it, drop only the guards.
		 */
		if (g) {
			unmap(ph, g);
			unmap(ph + g + len, g);
		}
		atomic_store(&r->base, old);
		goto out;
	}
	VOL_INC(mremap);
	if (g) {
		/* The old guards stay behind; the placeholder's edges are the new. */
		unmap((void *)(old - g), g);
		unmap((void *)(old + len), g);
	}
	if (r->kind == R_UFFD) {
		e = uffd_register(mix_uffd, np, len, true, false, false);
		if (e)
			note_error("UFFDIO_REGISTER after mremap: %s", ename(-e));
	}
	atomic_store_explicit(&r->base, (uintptr_t)np, memory_order_release);
	for (i = 0; i < 8; i++)
		mix_check_page(r, (uintptr_t)np, rnd(&w->rng, MIX_PAGES), "after-mremap");
out:
	pthread_rwlock_unlock(&r->map_lock);
}

/* munmap and mmap anew: a new generation, expectations reset. */
static void op_remap(struct worker *w, struct region *r)
{
	uintptr_t old;
	unsigned int i;
	void *p;

	pthread_rwlock_wrlock(&r->map_lock);
	old = atomic_load(&r->base);
	atomic_store(&r->base, 0);
	/* Map the new one first, so a failure leaves the old one in place. */
	p = mix_new_mapping(r);
	if (!p) {
		atomic_store(&r->base, old);
	} else {
		mix_unmap(r, old);
		mix_publish(r, p);
		for (i = 0; i < 4; i++)
			mix_check_page(r, (uintptr_t)p, rnd(&w->rng, MIX_PAGES), "after-remap");
	}
	pthread_rwlock_unlock(&r->map_lock);
}

/* What the forking thread saw, under the locks, just before fork(). */
static struct {
	uintptr_t base;
	unsigned int gen;
	unsigned int chunk;
	uint64_t exp[CHUNK_PAGES];
} fsnap[MIX_NREG];

static bool mix_plausible(int i, unsigned int p, uint64_t v)
{
	return v == 0 ||
	       (tag_magic(v) == MIX_MAGIC && (int)tag_region(v) == mix[i].id &&
		tag_gen(v) == fsnap[i].gen && tag_page(v) == p);
}

/*
 * The child: every page of the locked chunks must be exactly as recorded
 * (their owners were blocked across fork()); other pages may be in flight
 * in the parent, so they must only be zero or a tag of this very page.
 * A page the parent expects missing reads as zero here: without
 * UFFD_FEATURE_EVENT_FORK the child's VMAs are not registered
 * (dup_userfaultfd() resets them), so the child zero-fills. Its mismatches
 * count in the shared volume page.
 */
static void __attribute__((noreturn)) mix_fork_child(struct worker *w)
{
	int i;

	in_child = 1;
	for (i = 0; i < MIX_NREG; i++) {
		uintptr_t b = fsnap[i].base;
		unsigned int k, s;

		for (k = 0; k < CHUNK_PAGES; k++) {
			unsigned int p = fsnap[i].chunk * CHUNK_PAGES + k;
			uint64_t e = fsnap[i].exp[k];
			uint64_t h = *head_of(b, p), t = *tail_of(b, p);

			if (e == EXP_MISSING)
				e = 0;
			if (h != e)
				report_mismatch(mix[i].id, p, e, h, "fork-child");
			else if (t != e)
				report_mismatch(mix[i].id, p, e, t, "fork-child-tail");
		}
		for (s = 0; s < FORK_SAMPLE; s++) {
			unsigned int p = rnd(&w->rng, MIX_PAGES);
			uint64_t h, t;

			if (p / CHUNK_PAGES == fsnap[i].chunk)
				continue;
			h = *head_of(b, p);
			t = *tail_of(b, p);
			if (!mix_plausible(i, p, h))
				report_mismatch(mix[i].id, p, 0, h, "fork-child-foreign");
			else if (!mix_plausible(i, p, t))
				report_mismatch(mix[i].id, p, 0, t, "fork-child-foreign-tail");
		}
		VOL_ADD(checks, CHUNK_PAGES + FORK_SAMPLE);
	}
	_exit(0);
}

static void op_fork(struct worker *w)
{
	uint64_t now = now_ns();
	pid_t pid, got;
	int i, st;

	/* One forker at a time, at most one fork per 5 ms. */
	if (now < atomic_load(&next_fork_ns) || pthread_mutex_trylock(&fork_lock))
		return;
	for (i = 0; i < MIX_NREG; i++) {
		struct region *r = &mix[i];
		unsigned int k;

		pthread_rwlock_rdlock(&r->map_lock);
		fsnap[i].chunk = rnd(&w->rng, MIX_CHUNKS);
		pthread_mutex_lock(&r->chunk_lock[fsnap[i].chunk]);
		fsnap[i].base = atomic_load(&r->base);
		fsnap[i].gen = atomic_load(&r->gen);
		for (k = 0; k < CHUNK_PAGES; k++)
			fsnap[i].exp[k] = atomic_load(&r->expect[fsnap[i].chunk * CHUNK_PAGES + k]);
	}
	pid = fork();
	if (pid == 0)
		mix_fork_child(w);
	if (pid < 0) {
		note_error("fork: %s", ename(errno));
	} else {
		VOL_INC(forks);
		/*
		 * Keep the chunks locked until the child has checked them: a
		 * shmem chunk is shared with the child, so the parent must not
		 * write it meanwhile.
		 */
		while ((got = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
			;
		if (got < 0)
			note_error("waitpid(fork checker): %s", ename(errno));
		else if (!WIFEXITED(st) || WEXITSTATUS(st))
			note_error("fork checker: wait status %#x", st);
	}
	for (i = MIX_NREG - 1; i >= 0; i--) {
		pthread_mutex_unlock(&mix[i].chunk_lock[fsnap[i].chunk]);
		pthread_rwlock_unlock(&mix[i].map_lock);
	}
	atomic_store(&next_fork_ns, now_ns() + 5000000ULL);
	pthread_mutex_unlock(&fork_lock);
}

static void *mix_worker(void *arg)
{
	struct worker *w = arg;

	while (now_ns() < mix_deadline) {
		/*
		 * Half the time every thread goes for the same "hot" region
		 * (rotating every 50 ms), so faults race on one VMA.
		 */
		unsigned int hot = (now_ns() / 50000000ULL) % MIX_NREG;
		struct region *r = &mix[rnd(&w->rng, 2) ? hot : rnd(&w->rng, MIX_NREG)];
		unsigned int x = rnd(&w->rng, 100);

		if (x < 40)
			op_pages(w, r, true);
		else if (x < 65)
			op_pages(w, r, false);
		else if (x < 73)
			op_pageout(w, r);
		else if (x < 80)
			op_dontneed(w, r);
		else if (x < 86)
			op_mprotect(w, r);
		else if (x < 91)
			op_mremap(w, r);
		else if (x < 95)
			op_remap(w, r);
		else
			op_fork(w);
	}
	return NULL;
}

/* The regions and the uffd handler; the globals above are this case's. */
FIXTURE(stress) {
	bool have_uffd;
	bool handler_started;
	pthread_t handler;
};

FIXTURE_SETUP(stress)
{
	struct sigaction sa = { .sa_sigaction = on_crash, .sa_flags = SA_SIGINFO };
	pthread_rwlockattr_t ra;
	unsigned int i, c;
	void *p;

	vol = mmap(NULL, sizeof(*vol), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, vol);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	mix_uffd = uffd_new(true);
	self->have_uffd = mix_uffd >= 0;
	if (!self->have_uffd) {
		if (mix_uffd != -ENOSYS)
			note_error("userfaultfd: %s", ename(-mix_uffd));
		say("stress.mixed: no userfaultfd (%s): uffd regions run as private anon",
		    ename(-mix_uffd));
	}
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (i = 0; i < MIX_NREG; i++) {
		struct region *r = &mix[i];

		r->id = i;
		r->kind = i / MIX_PER_KIND;
		if (r->kind == R_UFFD && !self->have_uffd)
			r->kind = R_PRIV;
		pthread_rwlock_init(&r->map_lock, &ra);
		for (c = 0; c < MIX_CHUNKS; c++)
			pthread_mutex_init(&r->chunk_lock[c], NULL);
		p = mix_new_mapping(r);
		ASSERT_NE(NULL, p);
		mix_publish(r, p);
	}
	if (self->have_uffd) {
		ASSERT_EQ(0, pthread_create(&self->handler, NULL, mix_uffd_handler, NULL));
		self->handler_started = true;
	}
}

FIXTURE_TEARDOWN(stress)
{
	unsigned int i;

	atomic_store(&mix_handler_stop, true);
	if (self->handler_started)
		pthread_join(self->handler, NULL);
	for (i = 0; i < MIX_NREG; i++)
		mix_unmap(&mix[i], atomic_load(&mix[i].base));
	if (self->have_uffd)
		close(mix_uffd);
	say("volume checks=%lu forks=%lu uffd_copy=%lu uffd_zeropage=%lu mmap=%lu munmap=%lu mprotect=%lu mremap=%lu mremap_split=%lu dontneed=%lu pageout=%lu mismatches=%lu",
	    atomic_load(&vol->checks), atomic_load(&vol->forks),
	    atomic_load(&vol->uffd_copy), atomic_load(&vol->uffd_zeropage),
	    atomic_load(&vol->mmap), atomic_load(&vol->munmap),
	    atomic_load(&vol->mprotect), atomic_load(&vol->mremap),
	    atomic_load(&vol->mremap_split), atomic_load(&vol->dontneed),
	    atomic_load(&vol->pageout), atomic_load(&vol->mismatches));
}

/* In the end STRESS_TIMEOUT(-t): main() sets it. */
TEST_F_TIMEOUT(stress, mixed, STRESS_TIMEOUT(10))
{
	struct worker *w = calloc(nr_threads, sizeof(*w));
	unsigned int i, p;

	ASSERT_NE(NULL, w);
	mix_deadline = now_ns() + run_seconds * STRESS_PERCENT * 10000000ULL;
	for (i = 0; i < nr_threads; i++) {
		w[i].rng = seed_for(i);
		if (pthread_create(&w[i].th, NULL, mix_worker, &w[i])) {
			note_error("pthread_create(worker %u)", i);
			w[i].th = 0;
		}
	}
	for (i = 0; i < nr_threads; i++)
		if (w[i].th)
			pthread_join(w[i].th, NULL);
	free(w);

	/* Final sweep of every page, with the handler still serving faults. */
	for (i = 0; i < MIX_NREG; i++)
		for (p = 0; p < MIX_PAGES; p++)
			mix_check_page(&mix[i], atomic_load(&mix[i].base), p, "final");

	EXPECT_EQ(0UL, atomic_load(&vol->mismatches))
		TH_LOG("pages not as written (the first %d: \"# mismatch\" above)",
		       MAX_MISMATCH_LINES);
	EXPECT_EQ(0UL, atomic_load(&vol->errors))
		TH_LOG("unexpected errors (\"# error:\" above)");
	/* No mismatch proves nothing if nothing ran. */
	EXPECT_NE(0UL, atomic_load(&vol->checks)) TH_LOG("no page was checked");
	EXPECT_NE(0UL, atomic_load(&vol->forks)) TH_LOG("no fork");
	if (self->have_uffd) {
		EXPECT_NE(0UL, atomic_load(&vol->uffd_copy) + atomic_load(&vol->uffd_zeropage))
			TH_LOG("no uffd fault was resolved by UFFDIO_COPY or ZEROPAGE");
	}
}

/* ================================================================== */
/* uffd.api, uffd.ranges: bad input, against fs/ and mm/userfaultfd.c */

/* @got: 0 or -errno. @err: the errno expected, 0 for success. */
#define WANT(what, got, err) do {						\
	long __got = (got);							\
	int __err = __got < 0 ? (int)-__got : 0;				\
										\
	EXPECT_EQ(err, __err)							\
		TH_LOG("%s: got %s, expected %s", what, ename(__err), ename(err)); \
	if (verbose && __err == (err))						\
		say("%s: %s as expected", what, ename(__err));			\
} while (0)

static long do_api(int fd, uint64_t api, uint64_t features, struct uffdio_api *res)
{
	struct uffdio_api a = { .api = api, .features = features };
	long r = xioctl(fd, UFFDIO_API, &a);

	if (res)
		*res = a;
	return r;
}

static long do_register(int fd, uintptr_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = mode };

	return xioctl(fd, UFFDIO_REGISTER, &reg);
}

static long do_copy(int fd, uintptr_t dst, uintptr_t src, uint64_t len, uint64_t mode,
		    long long *copied)
{
	struct uffdio_copy c = { .dst = dst, .src = src, .len = len, .mode = mode,
				 .copy = 0x7777 };
	long r = xioctl(fd, UFFDIO_COPY, &c);

	if (copied)
		*copied = c.copy;
	return r;
}

static long do_zeropage(int fd, uintptr_t start, uint64_t len, uint64_t mode,
			long long *zeroed)
{
	struct uffdio_zeropage z = { .range = { start, len }, .mode = mode, .zeropage = 0x7777 };
	long r = xioctl(fd, UFFDIO_ZEROPAGE, &z);

	if (zeroed)
		*zeroed = z.zeropage;
	return r;
}

static long do_range(int fd, unsigned long cmd, uintptr_t start, uint64_t len)
{
	struct uffdio_range rg = { .start = start, .len = len };

	return xioctl(fd, cmd, &rg);
}

static long do_wp(int fd, uintptr_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = { .range = { start, len }, .mode = mode };

	return xioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

FIXTURE(uffd) {
	int fd;		/* no UFFDIO_API yet */
};

FIXTURE_SETUP(uffd)
{
	self->fd = uffd_new(false);
	if (self->fd == -ENOSYS)
		SKIP(return, "userfaultfd: ENOSYS (a kernel without CONFIG_USERFAULTFD)");
	ASSERT_LE(0, self->fd) TH_LOG("userfaultfd: %s", ename(-self->fd));
}

FIXTURE_TEARDOWN(uffd)
{
	close(self->fd);
}

/* The API handshake and the fd itself. */
TEST_F(uffd, api)
{
	struct pollfd pfd = { .fd = self->fd, .events = POLLIN };
	struct uffdio_api a;
	struct uffd_msg m;
	char byte;
	long r;
	int fd;

	/* flags other than O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY */
	fd = uffd_open(O_CLOEXEC | 0x10);
	WANT("userfaultfd(unknown flag)", fd < 0 ? fd : 0, EINVAL);
	if (fd >= 0)
		close(fd);

	/* Every ioctl but UFFDIO_API, and read(), need the handshake first. */
	WANT("REGISTER before UFFDIO_API",
	     do_register(self->fd, (uintptr_t)&a & ~(uintptr_t)(psize() - 1), psize(),
			 UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	WANT("WAKE before UFFDIO_API", do_range(self->fd, UFFDIO_WAKE, psize(), psize()), EINVAL);
	WANT("read() before UFFDIO_API", neg_errno(read(self->fd, &byte, 1)), EINVAL);
	EXPECT_TRUE(poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR))
		TH_LOG("poll before UFFDIO_API: revents %#x, expected POLLERR", pfd.revents);

	r = do_api(self->fd, 0xbad, 0, &a);
	WANT("UFFDIO_API wrong api", r, EINVAL);
	/* userfaultfd_api() err_out: the reply is zeroed on failure */
	EXPECT_EQ(0ULL, a.features) TH_LOG("UFFDIO_API wrong api: features not cleared");
	EXPECT_EQ(0ULL, a.ioctls) TH_LOG("UFFDIO_API wrong api: ioctls not cleared");
	WANT("UFFDIO_API unknown feature bit 62",
	     do_api(self->fd, UFFD_API, 1ULL << 62, NULL), EINVAL);
	/* Neither failure initialised the context: the real handshake works. */
	r = do_api(self->fd, UFFD_API, 0, &a);
	WANT("UFFDIO_API after failed ones", r, 0);
	if (!r) {
		EXPECT_TRUE(!!(a.ioctls & (1ULL << _UFFDIO_REGISTER)))
			TH_LOG("UFFDIO_API: ioctls %#llx lack UFFDIO_REGISTER",
			       (unsigned long long)a.ioctls);
	}
	/* cmpxchg(&ctx->features, 0, ...) in userfaultfd_api(): once only */
	WANT("UFFDIO_API twice", do_api(self->fd, UFFD_API, 0, NULL), EINVAL);
	WANT("unknown ioctl", xioctl(self->fd, _IOWR(UFFDIO, 0x3e, __u64), &a), EINVAL);
	WANT("read() buffer smaller than uffd_msg", neg_errno(read(self->fd, &byte, 1)), EINVAL);
	WANT("read() with nothing pending (O_NONBLOCK)",
	     neg_errno(read(self->fd, &m, sizeof(m))), EAGAIN);
	fd = uffd_new(true);
	WANT("second userfaultfd", fd < 0 ? fd : 0, 0);
	if (fd >= 0)
		close(fd);
}

/* REGISTER, COPY, ZEROPAGE, WAKE, WRITEPROTECT, UNREGISTER. */
TEST_F(uffd, ranges)
{
	const uint64_t miss = UFFDIO_REGISTER_MODE_MISSING;
	const size_t ps = psize();
	uintptr_t a, hole, src;
	int fd = self->fd, fd2;
	long long cnt;
	long r;

	r = do_api(fd, UFFD_API, 0, NULL);
	ASSERT_EQ(0, r) TH_LOG("UFFDIO_API: %s", ename(-r));
	/* Pages 0-7: a (0-3 registered MISSING, 4-7 not); 8: a hole; 9-10: src. */
	a = (uintptr_t)mmap(NULL, 11 * ps, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, (void *)a);
	hole = a + 8 * ps;
	src = a + 9 * ps;
	ASSERT_EQ(0, munmap((void *)hole, ps));
	*(uint64_t *)src = 0x1122334455667788ULL;
	*(uint64_t *)(src + 8) = 0x99aabbccddeeff00ULL;

	/* validate_range(): alignment, zero length, wrap and task size */
	WANT("REGISTER unaligned start", do_register(fd, a + 1, ps, miss), EINVAL);
	WANT("REGISTER unaligned len", do_register(fd, a, ps + 1, miss), EINVAL);
	WANT("REGISTER len 0", do_register(fd, a, 0, miss), EINVAL);
	WANT("REGISTER mode 0", do_register(fd, a, ps, 0), EINVAL);
	WANT("REGISTER unknown mode bit", do_register(fd, a, ps, miss | (1ULL << 3)), EINVAL);
	WANT("REGISTER unmapped range", do_register(fd, hole, ps, miss), EINVAL);
	WANT("REGISTER start+len wraps", do_register(fd, a, (uint64_t)0 - ps, miss), EINVAL);
	WANT("REGISTER beyond task size", do_register(fd, 1ULL << 63, ps, miss), EINVAL);

	r = do_register(fd, a, 4 * ps, miss);
	ASSERT_EQ(0, r) TH_LOG("REGISTER valid: %s", ename(-r));
	fd2 = uffd_new(true);
	if (fd2 >= 0) {
		WANT("REGISTER range owned by another uffd", do_register(fd2, a, ps, miss), EBUSY);
		close(fd2);
	}

	/* UFFDIO_COPY: dst and len page aligned; src need not be */
	WANT("COPY unaligned dst", do_copy(fd, a + 8, src, ps, 0, NULL), EINVAL);
	WANT("COPY unaligned len", do_copy(fd, a, src, ps + 1, 0, NULL), EINVAL);
	WANT("COPY len 0", do_copy(fd, a, src, 0, 0, NULL), EINVAL);
	WANT("COPY unknown mode bit", do_copy(fd, a, src, ps, 1ULL << 5, NULL), EINVAL);
	/* mfill_atomic(): MODE_WP needs a range registered with MODE_WP */
	WANT("COPY MODE_WP on a MISSING-only range",
	     do_copy(fd, a, src, ps, UFFDIO_COPY_MODE_WP, NULL), EINVAL);
	WANT("COPY to a mapped, unregistered page", do_copy(fd, a + 4 * ps, src, ps, 0, &cnt),
	     ENOENT);
	EXPECT_EQ(-ENOENT, cnt) TH_LOG("COPY to an unregistered page: copy field");
	WANT("COPY across the end of the registered VMA",
	     do_copy(fd, a + 3 * ps, src, 2 * ps, 0, NULL), ENOENT);
	WANT("COPY to an unmapped range", do_copy(fd, hole, src, ps, 0, NULL), ENOENT);
	WANT("COPY from an unmapped src", do_copy(fd, a, hole, ps, 0, &cnt), EFAULT);
	EXPECT_EQ(-EFAULT, cnt) TH_LOG("COPY from an unmapped src: copy field");
	/* validate_unaligned_range() for src: an unaligned src is accepted */
	r = do_copy(fd, a, src + 8, ps, 0, &cnt);
	WANT("COPY from an unaligned src", r, 0);
	if (!r) {
		EXPECT_EQ((long long)ps, cnt) TH_LOG("COPY from an unaligned src: copy field");
		EXPECT_EQ(0x99aabbccddeeff00ULL, *(volatile uint64_t *)a)
			TH_LOG("COPY from an unaligned src: content");
	}
	WANT("COPY onto a populated page", do_copy(fd, a, src, ps, 0, &cnt), EEXIST);
	EXPECT_EQ(-EEXIST, cnt) TH_LOG("COPY onto a populated page: copy field");
	/* pages 1..2 with page 2 populated: one page copied, then -EAGAIN */
	WANT("COPY page 2", do_copy(fd, a + 2 * ps, src, ps, 0, NULL), 0);
	WANT("COPY of 2 pages, 2nd populated (partial)", do_copy(fd, a + ps, src, 2 * ps, 0, &cnt),
	     EAGAIN);
	EXPECT_EQ((long long)ps, cnt) TH_LOG("COPY partial: copy field");

	/* UFFDIO_ZEROPAGE: only MODE_DONTWAKE exists */
	WANT("ZEROPAGE unknown mode bit", do_zeropage(fd, a + 3 * ps, ps, 1ULL << 1, NULL), EINVAL);
	WANT("ZEROPAGE unaligned start", do_zeropage(fd, a + 3 * ps + 16, ps, 0, NULL), EINVAL);
	WANT("ZEROPAGE unaligned len", do_zeropage(fd, a + 3 * ps, ps - 1, 0, NULL), EINVAL);
	WANT("ZEROPAGE unregistered page", do_zeropage(fd, a + 5 * ps, ps, 0, NULL), ENOENT);
	WANT("ZEROPAGE onto a populated page", do_zeropage(fd, a, ps, 0, &cnt), EEXIST);
	EXPECT_EQ(-EEXIST, cnt) TH_LOG("ZEROPAGE onto a populated page: zeropage field");
	r = do_zeropage(fd, a + 3 * ps, ps, 0, &cnt);
	WANT("ZEROPAGE valid", r, 0);
	if (!r) {
		EXPECT_EQ(0ULL, *(volatile uint64_t *)(a + 3 * ps))
			TH_LOG("ZEROPAGE valid: content");
	}

	/* UFFDIO_WAKE */
	WANT("WAKE unaligned start", do_range(fd, UFFDIO_WAKE, a + 1, ps), EINVAL);
	WANT("WAKE len 0", do_range(fd, UFFDIO_WAKE, a, 0), EINVAL);
	WANT("WAKE valid, nobody waiting", do_range(fd, UFFDIO_WAKE, a, ps), 0);

	/* UFFDIO_WRITEPROTECT: mode checked first, then the VMA's WP mode */
	WANT("WRITEPROTECT unknown mode bit", do_wp(fd, a, ps, 1ULL << 2), EINVAL);
	WANT("WRITEPROTECT MODE_WP|MODE_DONTWAKE",
	     do_wp(fd, a, ps, UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE),
	     EINVAL);
	WANT("WRITEPROTECT unaligned", do_wp(fd, a + 8, ps, UFFDIO_WRITEPROTECT_MODE_WP), EINVAL);
	/* mwriteprotect_range(): !userfaultfd_wp(vma) is -ENOENT */
	WANT("WRITEPROTECT on a MISSING-only range", do_wp(fd, a, ps, UFFDIO_WRITEPROTECT_MODE_WP),
	     ENOENT);

	/* UFFDIO_UNREGISTER */
	WANT("UNREGISTER unaligned start", do_range(fd, UFFDIO_UNREGISTER, a + 8, ps), EINVAL);
	WANT("UNREGISTER unaligned len", do_range(fd, UFFDIO_UNREGISTER, a, ps + 8), EINVAL);
	WANT("UNREGISTER len 0", do_range(fd, UFFDIO_UNREGISTER, a, 0), EINVAL);
	WANT("UNREGISTER unmapped range", do_range(fd, UFFDIO_UNREGISTER, hole, ps), EINVAL);
	WANT("UNREGISTER valid", do_range(fd, UFFDIO_UNREGISTER, a, 4 * ps), 0);
	WANT("UNREGISTER of an unregistered range", do_range(fd, UFFDIO_UNREGISTER, a, 4 * ps), 0);
	WANT("COPY after UNREGISTER", do_copy(fd, a + 3 * ps, src, ps, 0, NULL), ENOENT);
	munmap((void *)a, 11 * ps);
}

/* ================================================================== */
/* uffd_race.KIND.waiter: a thread blocks in a MISSING fault, then KIND. */

enum race_kind { RACE_MUNMAP, RACE_CLOSE, RACE_UNREGISTER, RACE_DONTWAKE };

/* Shared between the case and its race child. */
struct race_shared {
	atomic_int woken;	/* set just before the child's UFFDIO_WAKE */
	atomic_int tid;		/* of the faulting thread */
	atomic_int done;	/* the faulting thread's read returned */
	uint64_t value;		/* what it read */
	volatile uint64_t *addr;
};

FIXTURE(uffd_race) {
	struct race_shared *race;
};

FIXTURE_VARIANT(uffd_race) {
	enum race_kind kind;
};

FIXTURE_VARIANT_ADD(uffd_race, munmap) { .kind = RACE_MUNMAP };
FIXTURE_VARIANT_ADD(uffd_race, close) { .kind = RACE_CLOSE };
FIXTURE_VARIANT_ADD(uffd_race, unregister) { .kind = RACE_UNREGISTER };
FIXTURE_VARIANT_ADD(uffd_race, copy_dontwake) { .kind = RACE_DONTWAKE };

FIXTURE_SETUP(uffd_race)
{
	int fd = uffd_new(true);

	if (fd == -ENOSYS)
		SKIP(return, "userfaultfd: ENOSYS (a kernel without CONFIG_USERFAULTFD)");
	ASSERT_LE(0, fd) TH_LOG("userfaultfd: %s", ename(-fd));
	close(fd);
	self->race = mmap(NULL, sizeof(*self->race), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->race);
}

FIXTURE_TEARDOWN(uffd_race)
{
	munmap(self->race, sizeof(*self->race));
}

static void *race_fault_thread(void *arg)
{
	struct race_shared *race = arg;

	atomic_store(&race->tid, (int)syscall(SYS_gettid));
	race->value = *race->addr;	/* blocks in handle_userfault() */
	atomic_store(&race->done, 1);
	return NULL;
}

/*
 * The state letter of /proc/.../stat. 'S' is set_current_state() in
 * userfaultfd_fault_queue(), before userfaultfd_must_wait(): it does not
 * mean the thread is off the runqueue yet.
 */
static char thread_state(int tid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/*
 * Whether /proc/self/task/TID/wchan names a function: 1 yes, 0 no ("0" or
 * unreadable), -1 if the file does not exist (no CONFIG_KALLSYMS).
 * get_wchan() (kernel/sched/core.c) answers only for a task that is not
 * TASK_RUNNING and not on a runqueue (!p->on_rq), i.e. one that __schedule()
 * dequeued as blocked. It needs no CONFIG_STACKTRACE: x86's __get_wchan()
 * unwinds with whatever unwinder is built (GUESS in the c and rust kernels).
 */
static int thread_wchan(int tid)
{
	char path[64], buf[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? -1 : 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strcmp(buf, "0") != 0;
}

/*
 * Wait up to @ms for the faulting thread to be asleep in the uffd wait:
 * called once its fault message was read, so it is past the
 * __add_wait_queue() in userfaultfd_fault_queue(), and no page is there
 * yet, so userfaultfd_must_wait() says wait. From there the only way off
 * the runqueue in a sleeping state is the schedule() in
 * userfaultfd_fault_wait(): a non-zero wchan with state 'S' proves it.
 * (With DELAY_DEQUEUE, on_rq lags a little behind the sleep: we poll.)
 */
static bool wait_asleep(struct race_shared *race, int ms, int *wchan)
{
	int tid = atomic_load(&race->tid);

	for (;;) {
		*wchan = thread_wchan(tid);
		if (*wchan > 0 && thread_state(tid) == 'S' && !atomic_load(&race->done))
			return true;
		if (*wchan < 0 || ms <= 0)
			return false;
		sleep_ms(10);
		ms -= 10;
	}
}

static bool wait_done(struct race_shared *race, int ms)
{
	while (ms > 0 && !atomic_load(&race->done)) {
		sleep_ms(10);
		ms -= 10;
	}
	return atomic_load(&race->done);
}

/*
 * In a child of the case, so that RACE_MUNMAP can end in SIGSEGV. Its
 * EXPECTs fail the case (the harness shares _metadata with every fork); a
 * check it cannot go on from ends it with _exit(1), which the case checks.
 * Its waits are bounded: 3 s for the fault message, 5 s for the thread to
 * sleep (RACE_DONTWAKE) and 3 s for the thread to finish.
 */
static void __attribute__((noreturn))
race_child(struct __test_metadata *_metadata, struct race_shared *race, enum race_kind kind)
{
	const size_t ps = psize();
	struct pollfd pfd;
	struct uffd_msg msg;
	uint64_t expect = 0;
	const char *after;
	pthread_t th;
	uintptr_t a;
	long long cnt;
	int fd, i, wchan;
	bool asleep;
	char *src;

	prctl(PR_SET_DUMPABLE, 0);	/* no core dump of RACE_MUNMAP's SIGSEGV */
	fd = uffd_new(true);
	if (fd < 0) {
		TH_LOG("userfaultfd: %s", ename(-fd));
		_exit(1);
	}
	/* The page the thread faults on, and the source of the COPY */
	a = (uintptr_t)mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	if (a == (uintptr_t)MAP_FAILED) {
		TH_LOG("mmap: %s", ename(errno));
		_exit(1);
	}
	src = (char *)a + ps;
	*(uint64_t *)src = make_tag(MIX_MAGIC, 77, 0, 0, 1);
	WANT("race REGISTER", do_register(fd, a, ps, UFFDIO_REGISTER_MODE_MISSING), 0);
	race->addr = (volatile uint64_t *)a;
	if (pthread_create(&th, NULL, race_fault_thread, race)) {
		TH_LOG("pthread_create failed");
		_exit(1);
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 3000) != 1 || read(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		TH_LOG("no fault message within 3 s");
		_exit(1);
	}
	EXPECT_TRUE(msg.event == UFFD_EVENT_PAGEFAULT &&
		    (msg.arg.pagefault.address & ~(uint64_t)(ps - 1)) == a)
		TH_LOG("message event %u address %#llx, expected a fault at %#lx", msg.event,
		       (unsigned long long)msg.arg.pagefault.address, (unsigned long)a);
	/*
	 * Give the thread time to sleep in the wait queue. 'S' can come
	 * before it is off the runqueue, which these three races do not
	 * mind; RACE_DONTWAKE waits for proof below.
	 */
	for (i = 0; kind != RACE_DONTWAKE && i < 300; i++) {
		char st = thread_state(atomic_load(&race->tid));

		if (st == 'S' || st == 'D')
			break;
		sleep_ms(10);
	}

	switch (kind) {
	case RACE_MUNMAP:
		/*
		 * Without UFFD_FEATURE_EVENT_UNMAP, munmap() does not wake the
		 * waiter. COPY finds no VMA: uffd_mfill_lock() -> -ENOENT.
		 * WAKE releases the thread, whose retried fault finds no VMA:
		 * SIGSEGV kills this child, which the case expects.
		 */
		WANT("munmap", neg_errno(munmap((void *)a, ps)), 0);
		WANT("COPY into the unmapped range", do_copy(fd, a, (uintptr_t)src, ps, 0, &cnt),
		     ENOENT);
		EXPECT_EQ(-ENOENT, cnt) TH_LOG("COPY into the unmapped range: copy field");
		/* An early release would SIGSEGV now, with woken still 0. */
		sleep_ms(50);
		atomic_store(&race->woken, 1);
		WANT("WAKE the unmapped range", do_range(fd, UFFDIO_WAKE, a, ps), 0);
		if (wait_done(race, 3000))
			TH_LOG("thread read %#llx from an unmapped page",
			       (unsigned long long)race->value);
		else
			TH_LOG("faulting thread still blocked 3 s after UFFDIO_WAKE");
		_exit(1);
	case RACE_CLOSE:
		/*
		 * userfaultfd_release(): marks the ctx released, unregisters
		 * every VMA, wakes all waiters. The retried fault is an
		 * ordinary anonymous fault: the thread reads zero.
		 */
		close(fd);
		after = "close(uffd)";
		break;
	case RACE_UNREGISTER:
		/* userfaultfd_unregister() wakes waiters of a MISSING range */
		WANT("UNREGISTER with a waiter", do_range(fd, UFFDIO_UNREGISTER, a, ps), 0);
		after = "UNREGISTER";
		break;
	case RACE_DONTWAKE:
	default:
		/*
		 * UFFDIO_COPY takes only the per-VMA read lock: a COPY
		 * between set_current_state() and userfaultfd_must_wait()
		 * in userfaultfd_fault_queue() makes the thread skip the
		 * sleep, with no wakeup involved. Only a thread seen off the
		 * runqueue must stay blocked after COPY(DONTWAKE).
		 */
		asleep = wait_asleep(race, 5000, &wchan);
		if (!asleep)
			say("faulting thread not seen asleep in 5 s (wchan %s): not checking that DONTWAKE leaves it blocked",
			    wchan < 0 ? "missing" : wchan ? "set, state not S" : "0");
		WANT("COPY(DONTWAKE)",
		     do_copy(fd, a, (uintptr_t)src, ps, UFFDIO_COPY_MODE_DONTWAKE, NULL), 0);
		sleep_ms(100);
		if (asleep) {
			EXPECT_FALSE(atomic_load(&race->done))
				TH_LOG("COPY(DONTWAKE) woke the faulting thread");
		}
		WANT("WAKE after DONTWAKE", do_range(fd, UFFDIO_WAKE, a, ps), 0);
		after = "COPY(DONTWAKE) and UFFDIO_WAKE";
		expect = *(uint64_t *)src;
		break;
	}
	if (!wait_done(race, 3000)) {
		TH_LOG("faulting thread still blocked 3 s after %s", after);
		_exit(1);
	}
	EXPECT_EQ(expect, race->value) TH_LOG("what the faulting thread read after %s", after);
	_exit(0);
}

TEST_F(uffd_race, waiter)
{
	pid_t pid;
	int st;

	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", ename(errno));
	if (pid == 0)
		race_child(_metadata, self->race, variant->kind);
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	if (variant->kind != RACE_MUNMAP) {
		EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
			TH_LOG("child wait status %#x, expected exit 0", st);
		return;
	}
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
		TH_LOG("child wait status %#x, expected death by SIGSEGV", st);
	EXPECT_TRUE(atomic_load(&self->race->woken))
		TH_LOG("SIGSEGV before UFFDIO_WAKE: munmap or COPY released the waiter");
	if (verbose)
		say("uffd_race: child wait status %#x", st);
}

/* ================================================================== */

static void __attribute__((noreturn)) usage(const char *prog, int code)
{
	fprintf(stderr,
		"usage: %s [-s SEED] [-t SECONDS] [-j THREADS] [-v] [-- HARNESS OPTIONS]\n"
		"  -s SEED     replay the run that printed \"# seed SEED\"\n"
		"  -t SECONDS  the time budget (default 10): stress.mixed runs for %d%% of it\n"
		"  -j THREADS  stress.mixed's worker threads (default 4)\n"
		"  -v          also print the userfaultfd checks that passed\n"
		"  after --    kselftest_harness.h's options: -l lists the cases,\n"
		"              -r FIXTURE[.VARIANT].TEST runs one, -h says more\n",
		prog, STRESS_PERCENT);
	exit(code);
}

int main(int argc, char **argv)
{
	bool have_seed = false;
	int opt, first;

	/* '+': stop at the first non-option; getopt() also stops after "--". */
	while ((opt = getopt(argc, argv, "+s:t:j:vh")) != -1) {
		switch (opt) {
		case 's':
			run_seed = strtoull(optarg, NULL, 0);
			have_seed = true;
			break;
		case 't':
			run_seconds = strtoul(optarg, NULL, 0);
			if (run_seconds < 1)
				run_seconds = 1;
			if (run_seconds > 3600)
				run_seconds = 3600;
			break;
		case 'j':
			nr_threads = strtoul(optarg, NULL, 0);
			if (nr_threads < 1)
				nr_threads = 1;
			if (nr_threads > 64)
				nr_threads = 64;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(argv[0], KSFT_PASS);
		default:
			usage(argv[0], KSFT_FAIL);
		}
	}
	if (!have_seed)
		run_seed = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	ksft_print_msg("seed %llu\n", (unsigned long long)run_seed);
	ksft_print_msg("fault_stress: seed=%llu seconds=%u threads=%u page_size=%u (replay: -s %llu)\n",
		       (unsigned long long)run_seed, run_seconds, nr_threads, psize(),
		       (unsigned long long)run_seed);
	fflush(stdout);
	harness_set_timeout("stress", STRESS_TIMEOUT(run_seconds));

	/* The harness gets argv[0] and what followed "--", and a fresh getopt(). */
	first = optind - 1;
	argv[first] = argv[0];
	optind = 0;
	return test_harness_run(argc - first, argv + first);
}
