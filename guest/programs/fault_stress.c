// SPDX-License-Identifier: GPL-2.0
/*
 * fault_stress - seeded, time-bounded stress of page faults under the
 * per-VMA lock, with exact tracking of every page's expected content.
 *
 *   fault_stress [-s SEED] [-t SECONDS] [-j THREADS] [-v]
 *
 * Output is kselftest TAP, through tools/testing/selftests/kselftest.h.
 * The first line is always "# seed SEED": running again with -s SEED
 * replays every thread's sequence of operations (the interleaving between
 * threads is up to the scheduler).
 *
 * Every page the program touches carries a 64-bit tag in its first and
 * last 8 bytes: magic | region | generation | page index | version. The
 * writer of a page records the tag in a per-page expected-state array, and
 * every read compares memory against that array, so a lost, stale, zeroed
 * or foreign page is a mismatch that fails the case.
 *
 * Cases:
 *   1 stress_mixed          threads fault, verify, page out, zap, mprotect,
 *                           mremap, remap and fork over private anon, shmem
 *                           and userfaultfd (MISSING) regions
 *   2 fork_vs_fault         the 6.4 fork-versus-fault regression: faults on
 *                           fresh anon VMAs race fork(); the child must see
 *                           exactly the pre-fork content, never a later write
 *   3 uffd_bad_input        invalid userfaultfd input and races, against the
 *                           errors of fs/userfaultfd.c and mm/userfaultfd.c
 *   4 pageout_swapin_verify MADV_PAGEOUT then swap-in of private and shmem
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "guest_util.h"
#include "kselftest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define NUM_CASES	4
#define CHILD_TIMEOUT	20	/* seconds a forked checker may run */
#define CHILD_WATCHDOG	255	/* exit status of a child killed by its alarm */
#define MAX_MISMATCH_LINES 10

static size_t page_size;
static uint64_t run_seed;
static unsigned int run_seconds = 10;
static unsigned int nr_threads = 4;
static bool verbose;

/* ------------------------------------------------------------------ */
/* Output: one write() per line, no stdio buffers to duplicate on fork. */

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t off = 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	while (off < (size_t)n) {
		ssize_t w = write(STDOUT_FILENO, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += w;
	}
}

static const char *errno_name(int e)
{
	switch (e) {
	case 0:		return "success";
	case EPERM:	return "EPERM";
	case ENOENT:	return "ENOENT";
	case ESRCH:	return "ESRCH";
	case EINTR:	return "EINTR";
	case EIO:	return "EIO";
	case EBADF:	return "EBADF";
	case EAGAIN:	return "EAGAIN";
	case ENOMEM:	return "ENOMEM";
	case EFAULT:	return "EFAULT";
	case EBUSY:	return "EBUSY";
	case EEXIST:	return "EEXIST";
	case EINVAL:	return "EINVAL";
	case ENOSPC:	return "ENOSPC";
	case ENOSYS:	return "ENOSYS";
	case ENOTTY:	return "ENOTTY";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default:	return "E?";
	}
}

/* ------------------------------------------------------------------ */
/* Watchdog: the whole run is bounded even if a fault never returns. */

static const char *volatile cur_case = "startup";
static volatile sig_atomic_t in_child;

static void put_str(const char *s)
{
	ssize_t r = write(STDOUT_FILENO, s, strlen(s));

	(void)r;
}

static void watchdog(int sig)
{
	(void)sig;
	put_str("# watchdog: stuck in ");
	put_str(cur_case);
	put_str(in_child ? " (forked child)\n" : "\n");
	_exit(in_child ? CHILD_WATCHDOG : 2);
}

/* A forked checker gets its own alarm: alarms are not inherited. */
static void child_enter(void)
{
	in_child = 1;
	alarm(CHILD_TIMEOUT);
}

/* ------------------------------------------------------------------ */
/*
 * Volume counters, shared by all cases. They live in a MAP_SHARED page so
 * that forked checkers count into them too, and the "first 10 mismatch
 * lines" limit holds across processes.
 *
 * errors: unexpected syscall failures, which fail the running case. Here,
 * not in a plain global, so that note_error() in a forked checker (e.g.
 * pageout() in fvf_child()) reaches the parent's verdict.
 */
struct volume {
	atomic_ulong checks, forks, uffd_copy, uffd_zeropage, mmap, munmap,
		     mprotect, mremap, mremap_split, dontneed, pageout, mismatches;
	atomic_ulong mismatch_lines;
	atomic_ulong errors;
};
static struct volume vol_private;
static struct volume *vol = &vol_private;

/*
 * Where the shared counters stood when a case began, so that the case's
 * verdict counts only its own mismatches, errors and work.
 */
struct case_mark {
	unsigned long mismatches, errors, checks, forks, uffd;
};

#define NEED_CHECKS	0x1	/* a pass needs pages checked */
#define NEED_FORKS	0x2	/* ... forks */
#define NEED_UFFD	0x4	/* ... faults resolved by UFFDIO_COPY/ZEROPAGE */

static void case_mark(struct case_mark *m)
{
	m->mismatches = atomic_load(&vol->mismatches);
	m->errors = atomic_load(&vol->errors);
	m->checks = atomic_load(&vol->checks);
	m->forks = atomic_load(&vol->forks);
	m->uffd = atomic_load(&vol->uffd_copy) + atomic_load(&vol->uffd_zeropage);
}

/*
 * Whether the case since @m had no mismatch and no error, and did the work
 * @need names: no mismatch proves nothing if nothing ran.
 */
static bool case_clean(const struct case_mark *m, const char *name,
		       unsigned int need)
{
	bool ok = atomic_load(&vol->mismatches) == m->mismatches &&
		  atomic_load(&vol->errors) == m->errors;

	if ((need & NEED_CHECKS) && atomic_load(&vol->checks) == m->checks) {
		out("# %s: no page was checked\n", name);
		ok = false;
	}
	if ((need & NEED_FORKS) && atomic_load(&vol->forks) == m->forks) {
		out("# %s: no fork\n", name);
		ok = false;
	}
	if ((need & NEED_UFFD) &&
	    atomic_load(&vol->uffd_copy) + atomic_load(&vol->uffd_zeropage) == m->uffd) {
		out("# %s: userfaultfd is on, but no fault was resolved by UFFDIO_COPY or ZEROPAGE\n",
		    name);
		ok = false;
	}
	return ok;
}

#define VOL_ADD(f, n) atomic_fetch_add_explicit(&vol->f, (n), memory_order_relaxed)
#define VOL_INC(f) VOL_ADD(f, 1)

static atomic_bool pageout_unsupported;

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	VOL_INC(errors);
	out("# error: %s\n", buf);
}

static void report_mismatch(int region, unsigned long page, uint64_t expected,
			    uint64_t got, const char *op)
{
	VOL_INC(mismatches);
	if (atomic_fetch_add(&vol->mismatch_lines, 1) < MAX_MISMATCH_LINES)
		out("# mismatch region=%d page=%lu expected=%#llx got=%#llx op=%s\n",
		    region, page, (unsigned long long)expected,
		    (unsigned long long)got, op);
}

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

static uint64_t seed_for(unsigned int tcase, unsigned int idx)
{
	uint64_t s = run_seed ^ (0x632be59bd9b4e019ULL * (tcase * 1000ULL + idx + 1));

	return splitmix64(&s);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void spin_us(unsigned int us)
{
	uint64_t end = now_ns() + us * 1000ULL;

	while (now_ns() < end)
		;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Tags: magic(8) | region(8) | gen(16) | page(16) | version(16). */

#define MIX_MAGIC	0xa5ULL
#define FVF_MAGIC	0x5aULL
#define PO_MAGIC	0xc3ULL
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
static unsigned int tag_ver(uint64_t t)    { return t & 0xffff; }

static volatile uint64_t *head_of(uintptr_t base, unsigned long p)
{
	return (volatile uint64_t *)(base + p * page_size);
}

static volatile uint64_t *tail_of(uintptr_t base, unsigned long p)
{
	return (volatile uint64_t *)(base + (p + 1) * page_size - sizeof(uint64_t));
}

/* ------------------------------------------------------------------ */
/* Mapping helpers that count the volume and note unexpected errors. */

static void *map_anon(size_t len, int prot, bool shared)
{
	void *p = mmap(NULL, len, prot,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		note_error("mmap(%zu): %s", len, errno_name(errno));
		return NULL;
	}
	VOL_INC(mmap);
	return p;
}

static void unmap(void *p, size_t len)
{
	if (munmap(p, len))
		note_error("munmap(%p, %zu): %s", p, len, errno_name(errno));
	else
		VOL_INC(munmap);
}

/*
 * MADV_PAGEOUT: reclaims the range now (to zram when there is swap; without
 * swap only clean pages go). EINVAL means the kernel lacks it: remember and
 * stop asking, content expectations are unchanged either way.
 */
static int pageout(uintptr_t addr, size_t len)
{
	if (atomic_load_explicit(&pageout_unsupported, memory_order_relaxed))
		return -EINVAL;
	if (madvise((void *)addr, len, MADV_PAGEOUT)) {
		int e = errno;

		if (e == EINVAL) {
			if (!atomic_exchange(&pageout_unsupported, true))
				out("# MADV_PAGEOUT: EINVAL, not supported: no pageouts\n");
			return -e;
		}
		note_error("madvise(PAGEOUT): %s", errno_name(e));
		return -e;
	}
	VOL_INC(pageout);
	return 0;
}

/* ------------------------------------------------------------------ */
/* userfaultfd helpers. */

static int uffd_open(int flags)
{
	long fd = syscall(__NR_userfaultfd, flags);

	return fd < 0 ? -errno : (int)fd;
}

/* As root the full fd; if kernel faults are not allowed, user-mode only. */
static int uffd_open_any(void)
{
	int fd = uffd_open(O_CLOEXEC | O_NONBLOCK);

	if (fd == -EPERM)
		fd = uffd_open(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	return fd;
}

/* 0 or -errno: the form the bad-input checks compare. */
static long xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static long uffd_api(int fd, uint64_t api, uint64_t features, struct uffdio_api *res)
{
	struct uffdio_api a = { .api = api, .features = features };
	long r = xioctl(fd, UFFDIO_API, &a);

	if (res)
		*res = a;
	return r;
}

static long uffd_register(int fd, uintptr_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = mode,
	};

	return xioctl(fd, UFFDIO_REGISTER, &reg);
}

/* A fresh, API-initialised uffd, or -errno. */
static int uffd_new(void)
{
	int fd = uffd_open_any();
	long r;

	if (fd < 0)
		return fd;
	r = uffd_api(fd, UFFD_API, 0, NULL);
	if (r) {
		close(fd);
		return (int)r;
	}
	return fd;
}

/* ================================================================== */
/* Case 1: stress_mixed */

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

static size_t mix_len(void)
{
	return MIX_PAGES * page_size;
}

/*
 * A SIGSEGV or SIGBUS in this program means a mapping it relies on was not
 * there: a bug of the test or of the kernel. Say where, with the regions
 * as the program knows them and the mappings as the kernel does, so that
 * the run can be understood from the guest log alone. Only write(2) and
 * read(2): this runs in a signal handler.
 */
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

	(void)uc;
	put_str(sig == SIGSEGV ? "# crash: SIGSEGV" : "# crash: SIGBUS");
	put_hex(" at ", (unsigned long)si->si_addr);
	put_hex(" code ", (unsigned long)si->si_code);
	put_str(" in ");
	put_str(cur_case);
	put_str(in_child ? " (forked child)\n" : "\n");
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
	_exit(3);
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
	return r->kind == R_UFFD ? page_size : 0;
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

	if (g) {
		char *res = map_anon(mix_len() + 2 * g, PROT_NONE, false);

		if (!res)
			return NULL;
		p = mmap(res + g, mix_len(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED) {
			note_error("mmap(MAP_FIXED): %s", errno_name(errno));
			unmap(res, mix_len() + 2 * g);
			return NULL;
		}
	} else {
		p = map_anon(mix_len(), PROT_READ | PROT_WRITE, r->kind == R_SHM);
		if (!p)
			return NULL;
	}
	if (r->kind == R_UFFD) {
		long e = uffd_register(mix_uffd, (uintptr_t)p, mix_len(),
				       UFFDIO_REGISTER_MODE_MISSING);

		if (e)
			note_error("UFFDIO_REGISTER region %d: %s", r->id,
				   errno_name((int)-e));
	}
	return p;
}

/* Install it: a new generation, content zero or (uffd) missing. */
static void mix_publish(struct region *r, void *p)
{
	unsigned int i;

	atomic_store(&r->gen, (atomic_load(&r->gen) + 1) & 0xffff);
	for (i = 0; i < MIX_PAGES; i++) {
		atomic_store_explicit(&r->expect[i],
				      r->kind == R_UFFD ? EXP_MISSING : 0,
				      memory_order_relaxed);
		r->ver[i] = 0;
	}
	/* Publish last: the handler reads gen after seeing base. */
	atomic_store_explicit(&r->base, (uintptr_t)p, memory_order_release);
}

/* Called with the chunk (or the whole region) locked. */
static void mix_check_page(struct region *r, uintptr_t b, unsigned int p,
			   const char *op)
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

static void *mix_uffd_handler(void *arg)
{
	uint64_t rng = seed_for(1, 999);
	struct uffd_msg msgs[16];
	char *src;

	(void)arg;
	src = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED) {
		note_error("uffd handler: mmap: %s", errno_name(errno));
		return NULL;
	}
	memset(src, 0, page_size);
	while (!atomic_load(&mix_handler_stop)) {
		struct pollfd pfd = { .fd = mix_uffd, .events = POLLIN };
		ssize_t n;
		int i, pr;

		/* A timeout, so the handler notices the stop flag. */
		pr = poll(&pfd, 1, 100);
		if (pr < 0 && errno != EINTR) {
			note_error("uffd handler: poll: %s", errno_name(errno));
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
			note_error("uffd handler: read: %s", errno_name(errno));
			break;
		}
		for (i = 0; i < (int)(n / (ssize_t)sizeof(msgs[0])); i++) {
			uintptr_t addr = msgs[i].arg.pagefault.address & ~(uintptr_t)(page_size - 1);
			struct region *r;
			uintptr_t b = 0;
			unsigned int p = 0;
			bool copy = rnd(&rng, 2);
			long e;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
				note_error("uffd handler: unexpected event %u", msgs[i].event);
				continue;
			}
			r = mix_find_uffd(addr, &b);
			if (r)
				p = (addr - b) / page_size;
			else
				note_error("uffd handler: fault at %#lx in no uffd region",
					   (unsigned long)addr);
			/*
			 * Record the expectation before resolving: the faulting
			 * thread reads it as soon as the ioctl wakes it.
			 */
			if (copy && r) {
				uint64_t tag = make_tag(MIX_MAGIC, r->id,
							atomic_load(&r->gen), p, 0);
				struct uffdio_copy c = {
					.dst = addr, .src = (uintptr_t)src,
					.len = page_size,
				};

				*(uint64_t *)src = tag;
				*(uint64_t *)(src + page_size - 8) = tag;
				atomic_store_explicit(&r->expect[p], tag, memory_order_release);
				e = xioctl(mix_uffd, UFFDIO_COPY, &c);
				if (!e)
					VOL_INC(uffd_copy);
			} else {
				struct uffdio_zeropage z = {
					.range = { .start = addr, .len = page_size },
				};

				if (r)
					atomic_store_explicit(&r->expect[p], 0,
							      memory_order_release);
				e = xioctl(mix_uffd, UFFDIO_ZEROPAGE, &z);
				if (!e)
					VOL_INC(uffd_zeropage);
			}
			if (e) {
				/*
				 * Nothing else populates a page whose chunk the
				 * faulting thread holds: EEXIST is a kernel bug.
				 * Wake the thread anyway so nothing hangs.
				 */
				struct uffdio_range w = { .start = addr, .len = page_size };

				note_error("uffd handler: %s at %#lx: %s",
					   copy && r ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE",
					   (unsigned long)addr, errno_name((int)-e));
				xioctl(mix_uffd, UFFDIO_WAKE, &w);
			}
		}
	}
	munmap(src, page_size);
	return NULL;
}

struct worker {
	pthread_t th;
	unsigned int idx;
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
 * Page out a range while other threads keep faulting pages of it: content
 * must survive swap-out and swap-in, so no expectation changes.
 */
static void op_pageout(struct worker *w, struct region *r)
{
	unsigned int a = rnd(&w->rng, MIX_PAGES);
	unsigned int n = 1 + rnd(&w->rng, MIX_PAGES - a);

	pthread_rwlock_rdlock(&r->map_lock);
	pageout(atomic_load(&r->base) + a * page_size, n * page_size);
	pthread_rwlock_unlock(&r->map_lock);
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
	if (madvise((void *)(b + first * page_size), n * page_size, MADV_DONTNEED)) {
		note_error("madvise(DONTNEED): %s", errno_name(errno));
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
	if (mprotect((void *)(b + a * page_size), n * page_size, PROT_READ)) {
		note_error("mprotect(RO): %s", errno_name(errno));
	} else {
		VOL_INC(mprotect);
		for (i = 0; i < 8 && i < n; i++)
			mix_check_page(r, b, a + rnd(&w->rng, n), "mprotect-ro");
		if (mprotect((void *)(b + a * page_size), n * page_size,
			     PROT_READ | PROT_WRITE))
			note_error("mprotect(RW): %s", errno_name(errno));
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
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < end && hi > start)
			n++;
	}
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
		note_error("mremap: %s (region in %u VMAs)", errno_name(errno), vmas);
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
		long e = uffd_register(mix_uffd, (uintptr_t)np, len,
				       UFFDIO_REGISTER_MODE_MISSING);

		if (e)
			note_error("UFFDIO_REGISTER after mremap: %s", errno_name((int)-e));
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
			mix_check_page(r, (uintptr_t)p, rnd(&w->rng, MIX_PAGES),
				       "after-remap");
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
 * (dup_userfaultfd() resets them), so the child zero-fills.
 */
static void __attribute__((noreturn)) mix_fork_child(struct worker *w)
{
	unsigned long bad = 0;
	int i;

	child_enter();
	for (i = 0; i < MIX_NREG; i++) {
		uintptr_t b = fsnap[i].base;
		unsigned int k, s;

		for (k = 0; k < CHUNK_PAGES; k++) {
			unsigned int p = fsnap[i].chunk * CHUNK_PAGES + k;
			uint64_t e = fsnap[i].exp[k];
			uint64_t h = *head_of(b, p), t = *tail_of(b, p);

			if (e == EXP_MISSING)
				e = 0;
			if (h != e) {
				bad++;
				report_mismatch(mix[i].id, p, e, h, "fork-child");
			} else if (t != e) {
				bad++;
				report_mismatch(mix[i].id, p, e, t, "fork-child-tail");
			}
		}
		for (s = 0; s < FORK_SAMPLE; s++) {
			unsigned int p = rnd(&w->rng, MIX_PAGES);
			uint64_t h, t;

			if (p / CHUNK_PAGES == fsnap[i].chunk)
				continue;
			h = *head_of(b, p);
			t = *tail_of(b, p);
			if (!mix_plausible(i, p, h)) {
				bad++;
				report_mismatch(mix[i].id, p, 0, h, "fork-child-foreign");
			} else if (!mix_plausible(i, p, t)) {
				bad++;
				report_mismatch(mix[i].id, p, 0, t, "fork-child-foreign-tail");
			}
		}
		VOL_ADD(checks, CHUNK_PAGES + FORK_SAMPLE);
	}
	_exit(bad > 250 ? 250 : (int)bad);
}

/*
 * Reap a checker child. Its mismatches are already in the shared counters;
 * its exit status (their number) only has to agree.
 */
static void reap_checker(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			note_error("waitpid(%s): %s", what, errno_name(errno));
			return;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == CHILD_WATCHDOG)
		note_error("%s child hit its %ds watchdog", what, CHILD_TIMEOUT);
	else if (WIFEXITED(st) && WEXITSTATUS(st) && vol == &vol_private)
		VOL_ADD(mismatches, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		note_error("%s child killed by signal %d", what, WTERMSIG(st));
}

static void op_fork(struct worker *w)
{
	uint64_t now = now_ns();
	pid_t pid;
	int i;

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
		note_error("fork: %s", errno_name(errno));
	} else {
		VOL_INC(forks);
		/*
		 * Keep the chunks locked until the child has checked them: a
		 * shmem chunk is shared with the child, so the parent must not
		 * write it meanwhile.
		 */
		reap_checker(pid, "stress_mixed fork");
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

static void case_stress_mixed(uint64_t budget_ns)
{
	const char *name = "stress_mixed";
	struct case_mark mark;
	struct worker *w;
	pthread_rwlockattr_t ra;
	pthread_t handler;
	bool have_uffd, handler_started = false;
	unsigned int i, p;
	void *mp;

	cur_case = name;
	case_mark(&mark);
	mix_uffd = uffd_new();
	have_uffd = mix_uffd >= 0;
	if (!have_uffd) {
		if (mix_uffd != -ENOSYS)
			note_error("userfaultfd: %s", errno_name(-mix_uffd));
		out("# %s: no userfaultfd (%s): uffd regions run as private anon\n",
		    name, errno_name(-mix_uffd));
	}

	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (i = 0; i < MIX_NREG; i++) {
		struct region *r = &mix[i];

		r->id = i;
		r->kind = i / MIX_PER_KIND;
		if (r->kind == R_UFFD && !have_uffd)
			r->kind = R_PRIV;
		pthread_rwlock_init(&r->map_lock, &ra);
		for (p = 0; p < MIX_CHUNKS; p++)
			pthread_mutex_init(&r->chunk_lock[p], NULL);
		atomic_store(&r->gen, 0);
		mp = mix_new_mapping(r);
		if (!mp) {
			ksft_test_result(false, "%s\n", name);
			return;
		}
		mix_publish(r, mp);
	}

	if (have_uffd) {
		if (pthread_create(&handler, NULL, mix_uffd_handler, NULL))
			note_error("pthread_create(handler)");
		else
			handler_started = true;
	}

	mix_deadline = now_ns() + budget_ns;
	w = calloc(nr_threads, sizeof(*w));
	if (!w) {
		note_error("calloc");
		mix_deadline = 0;
	}
	for (i = 0; w && i < nr_threads; i++) {
		w[i].idx = i;
		w[i].rng = seed_for(1, i);
		if (pthread_create(&w[i].th, NULL, mix_worker, &w[i])) {
			note_error("pthread_create(worker %u)", i);
			w[i].th = 0;
		}
	}
	for (i = 0; w && i < nr_threads; i++)
		if (w[i].th)
			pthread_join(w[i].th, NULL);
	free(w);

	/* Final sweep of every page, with the handler still serving faults. */
	for (i = 0; i < MIX_NREG; i++)
		for (p = 0; p < MIX_PAGES; p++)
			mix_check_page(&mix[i], atomic_load(&mix[i].base), p, "final");

	atomic_store(&mix_handler_stop, true);
	if (handler_started)
		pthread_join(handler, NULL);
	for (i = 0; i < MIX_NREG; i++) {
		mix_unmap(&mix[i], atomic_load(&mix[i].base));
		atomic_store(&mix[i].base, 0);
	}
	if (have_uffd)
		close(mix_uffd);

	ksft_test_result(case_clean(&mark, name,
				    NEED_CHECKS | NEED_FORKS | (have_uffd ? NEED_UFFD : 0)),
			 "%s\n", name);
}

/* ================================================================== */
/* Case 2: fork_vs_fault */

/*
 * The regression: with per-VMA locks (6.4), fork() took mmap_lock for write
 * but did not write-lock each VMA, so a thread could fault on a VMA (even
 * give it its first anon_vma) while dup_mmap() was copying it; the child
 * could end up with wrong page content. Fixed by vma_start_write() on every
 * VMA in dup_mmap() (fb49c455323f "fork: lock VMAs of the parent process
 * when forking"). Here threads first-touch fresh VMAs (no anon_vma yet),
 * rewrite pages (COW faults) and read after MADV_PAGEOUT (swap-in faults)
 * while the main thread forks. Each write carries in its tag how many forks
 * of the round the writer had seen complete, so the child can tell a write
 * that began after its fork() returned: that must never be visible.
 */
#define FVF_REGIONS	4
#define FVF_PAGES	256
#define FVF_TOTAL	(FVF_REGIONS * FVF_PAGES)
#define FVF_FORKS	3
#define FVF_ID0		100
#define FVF_CHILD_BIT	0x8000

static struct {
	unsigned int nthreads;
	uintptr_t base[FVF_REGIONS];
	_Atomic uint64_t expect[FVF_TOTAL];
	uint16_t ver[FVF_TOTAL];		/* owned by the page's thread */
	uint64_t pre[FVF_TOTAL];		/* published state before fork */
	uint64_t seen_h[FVF_TOTAL], seen_t[FVF_TOTAL];	/* child scratch */
	atomic_uint forks_done;
	atomic_bool round_stop;
	atomic_bool quit;
	/*
	 * Held while the writers are created: the barriers count the
	 * threads that did start, so they can only be set up afterwards.
	 */
	pthread_mutex_t gate;
	pthread_barrier_t start, end;
} fvf;

static uintptr_t fvf_addr(unsigned int g)
{
	return fvf.base[g / FVF_PAGES] + (g % FVF_PAGES) * page_size;
}

struct fvf_thread {
	pthread_t th;
	unsigned int tid;
};

static void *fvf_writer(void *arg)
{
	struct fvf_thread *t = arg;
	uint64_t rng = seed_for(2, t->tid);
	unsigned int n, own;

	/* Wait for the barriers and the final nthreads. */
	pthread_mutex_lock(&fvf.gate);
	pthread_mutex_unlock(&fvf.gate);
	n = fvf.nthreads;
	/* Thread t owns pages t, t+n, t+2n...: interleaved in every VMA. */
	own = (FVF_TOTAL - t->tid + n - 1) / n;

	for (;;) {
		pthread_barrier_wait(&fvf.start);
		if (atomic_load(&fvf.quit))
			break;
		while (!atomic_load_explicit(&fvf.round_stop, memory_order_relaxed)) {
			unsigned int g = t->tid + n * rnd(&rng, own);
			unsigned int reg = g / FVF_PAGES, i = g % FVF_PAGES;
			uintptr_t a = fvf_addr(g);
			volatile uint64_t *h = (volatile uint64_t *)a;
			volatile uint64_t *tl = (volatile uint64_t *)(a + page_size - 8);
			uint64_t e = atomic_load_explicit(&fvf.expect[g], memory_order_relaxed);
			unsigned int x = rnd(&rng, 10);

			if (e == 0 || x < 5) {
				/*
				 * Acquire: the stores below cannot move before
				 * this load, so a tag saying "k forks seen"
				 * was written after fork k returned.
				 */
				unsigned int epoch = atomic_load_explicit(&fvf.forks_done,
									  memory_order_acquire);
				uint64_t tag;

				fvf.ver[g] = fvf.ver[g] % 0xffff + 1;
				tag = make_tag(FVF_MAGIC, FVF_ID0 + reg, epoch, i, fvf.ver[g]);
				*h = tag;
				*tl = tag;
				atomic_store_explicit(&fvf.expect[g], tag, memory_order_release);
			} else {
				uint64_t hv, tv;

				if (x >= 8)
					pageout(a, page_size);
				hv = *h;
				tv = *tl;
				VOL_INC(checks);
				if (hv != e)
					report_mismatch(FVF_ID0 + reg, i, e, hv,
							x >= 8 ? "read-after-pageout" : "reread");
				else if (tv != e)
					report_mismatch(FVF_ID0 + reg, i, e, tv,
							x >= 8 ? "read-after-pageout-tail" : "reread-tail");
			}
		}
		pthread_barrier_wait(&fvf.end);
	}
	return NULL;
}

/* NULL if v may be in child k's copy of page g, else what is wrong. */
static const char *fvf_judge(uint64_t v, unsigned int g, unsigned int k)
{
	uint64_t pre = fvf.pre[g];

	if (v == 0)
		return pre ? "fork-child-lost" : NULL;
	if (tag_magic(v) != FVF_MAGIC || tag_region(v) != FVF_ID0 + g / FVF_PAGES ||
	    tag_page(v) != g % FVF_PAGES || (tag_gen(v) & FVF_CHILD_BIT))
		return "fork-child-foreign";
	if (tag_gen(v) >= k)
		return "fork-child-sees-postfork-write";
	if (pre && (int16_t)(tag_ver(v) - tag_ver(pre)) < 0)
		return "fork-child-stale";
	return NULL;
}

static void __attribute__((noreturn)) fvf_child(unsigned int k)
{
	unsigned long bad = 0;
	unsigned int g, r;

	child_enter();
	for (g = 0; g < FVF_TOTAL; g++) {
		uintptr_t a = fvf_addr(g);
		uint64_t h = *(volatile uint64_t *)a;
		uint64_t t = *(volatile uint64_t *)(a + page_size - 8);
		const char *why;

		if ((why = fvf_judge(h, g, k))) {
			bad++;
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES, fvf.pre[g], h, why);
		} else if ((why = fvf_judge(t, g, k))) {
			bad++;
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES, fvf.pre[g], t, why);
		}
		fvf.seen_h[g] = h;
		fvf.seen_t[g] = t;
	}
	/*
	 * A broken anon_vma link shows up in reclaim (rmap): page the child's
	 * copy out and read it back, it must not change.
	 */
	for (r = 0; r < FVF_REGIONS; r++)
		pageout(fvf.base[r], FVF_PAGES * page_size);
	for (g = 0; g < FVF_TOTAL; g++) {
		uintptr_t a = fvf_addr(g);
		uint64_t h = *(volatile uint64_t *)a;
		uint64_t t = *(volatile uint64_t *)(a + page_size - 8);

		if (h != fvf.seen_h[g]) {
			bad++;
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES,
					fvf.seen_h[g], h, "fork-child-after-pageout");
		} else if (t != fvf.seen_t[g]) {
			bad++;
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES,
					fvf.seen_t[g], t, "fork-child-after-pageout-tail");
		}
	}
	/* COW writes of the child: the parent checks they never leak back. */
	for (g = 0; g < FVF_TOTAL; g++) {
		uint64_t tag = make_tag(FVF_MAGIC, FVF_ID0 + g / FVF_PAGES,
					FVF_CHILD_BIT | k, g % FVF_PAGES, 0);

		*(volatile uint64_t *)fvf_addr(g) = tag;
		*(volatile uint64_t *)(fvf_addr(g) + page_size - 8) = tag;
	}
	VOL_ADD(checks, 2 * FVF_TOTAL);
	_exit(bad > 250 ? 250 : (int)bad);
}

static void fvf_parent_verify(const char *op)
{
	unsigned int g;

	for (g = 0; g < FVF_TOTAL; g++) {
		uintptr_t a = fvf_addr(g);
		uint64_t e = atomic_load(&fvf.expect[g]);
		uint64_t h = *(volatile uint64_t *)a;
		uint64_t t = *(volatile uint64_t *)(a + page_size - 8);

		VOL_INC(checks);
		if (h != e)
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES, e, h, op);
		else if (t != e)
			report_mismatch(FVF_ID0 + g / FVF_PAGES, g % FVF_PAGES, e, t, op);
	}
}

static bool fvf_round(uint64_t *rng, unsigned int round)
{
	pid_t pids[FVF_FORKS];
	unsigned int delay[FVF_FORKS] = { 0 };
	unsigned int k, nforks = 0, g, r;

	for (r = 0; r < FVF_REGIONS; r++) {
		/* Fresh VMAs: no anon_vma until the first fault. */
		void *p = map_anon(FVF_PAGES * page_size, PROT_READ | PROT_WRITE, false);

		if (!p) {
			while (r--)
				unmap((void *)fvf.base[r], FVF_PAGES * page_size);
			return false;
		}
		fvf.base[r] = (uintptr_t)p;
	}
	for (g = 0; g < FVF_TOTAL; g++) {
		atomic_store(&fvf.expect[g], 0);
		fvf.ver[g] = 0;
	}
	atomic_store(&fvf.forks_done, 0);
	atomic_store(&fvf.round_stop, false);
	pthread_barrier_wait(&fvf.start);

	for (k = 1; k <= FVF_FORKS; k++) {
		pid_t pid;

		/* The first fork lands among the very first faults. */
		delay[k - 1] = rnd(rng, k == 1 ? 200 : 1000);
		spin_us(delay[k - 1]);
		for (g = 0; g < FVF_TOTAL; g++)
			fvf.pre[g] = atomic_load_explicit(&fvf.expect[g], memory_order_acquire);
		pid = fork();
		if (pid == 0)
			fvf_child(k);
		if (pid < 0) {
			note_error("fork: %s", errno_name(errno));
			break;
		}
		atomic_store(&fvf.forks_done, k);
		VOL_INC(forks);
		pids[nforks++] = pid;
	}
	/* Writes after the last fork: COW breaks in the parent. */
	spin_us(rnd(rng, 1000));
	atomic_store(&fvf.round_stop, true);
	pthread_barrier_wait(&fvf.end);

	for (k = 0; k < nforks; k++)
		reap_checker(pids[k], "fork_vs_fault");
	fvf_parent_verify("parent-after-forks");
	for (r = 0; r < FVF_REGIONS; r++)
		pageout(fvf.base[r], FVF_PAGES * page_size);
	fvf_parent_verify("parent-after-pageout");
	for (r = 0; r < FVF_REGIONS; r++)
		unmap((void *)fvf.base[r], FVF_PAGES * page_size);
	if (verbose)
		out("# fork_vs_fault: round %u: %u forks after %u/%u/%u us\n",
		    round, nforks, delay[0], delay[1], delay[2]);
	return true;
}

static void case_fork_vs_fault(uint64_t budget_ns)
{
	const char *name = "fork_vs_fault";
	struct case_mark mark;
	uint64_t deadline = now_ns() + budget_ns;
	uint64_t rng = seed_for(2, 1000);
	struct fvf_thread *t;
	unsigned int i, rounds = 0, started = 0;
	bool ok;

	cur_case = name;
	case_mark(&mark);
	t = calloc(nr_threads, sizeof(*t));
	if (!t) {
		ksft_test_result(false, "%s\n", name);
		return;
	}
	atomic_store(&fvf.quit, false);
	pthread_mutex_init(&fvf.gate, NULL);
	pthread_mutex_lock(&fvf.gate);
	for (i = 0; i < nr_threads; i++) {
		t[i].tid = i;
		if (pthread_create(&t[i].th, NULL, fvf_writer, &t[i])) {
			/*
			 * Fails the case. Barriers for nr_threads + 1 would
			 * hold the started threads forever: count only them.
			 */
			note_error("pthread_create(fvf %u)", i);
			break;
		}
		started++;
	}
	fvf.nthreads = started;
	pthread_barrier_init(&fvf.start, NULL, started + 1);
	pthread_barrier_init(&fvf.end, NULL, started + 1);
	pthread_mutex_unlock(&fvf.gate);
	if (started) {
		do {
			if (!fvf_round(&rng, rounds))
				break;
			rounds++;
		} while (now_ns() < deadline);
		atomic_store(&fvf.quit, true);
		pthread_barrier_wait(&fvf.start);
	}
	for (i = 0; i < started; i++)
		pthread_join(t[i].th, NULL);
	free(t);
	pthread_barrier_destroy(&fvf.start);
	pthread_barrier_destroy(&fvf.end);
	pthread_mutex_destroy(&fvf.gate);
	out("# %s: %u rounds of %d forks\n", name, rounds, FVF_FORKS);
	/* A round can end early (fork failed): it must have forked and checked. */
	ok = case_clean(&mark, name, NEED_CHECKS | NEED_FORKS);
	ksft_test_result(ok && started == nr_threads && rounds > 0, "%s\n", name);
}

/* ================================================================== */
/* Case 3: uffd_bad_input */

static unsigned int bad_fails;

/* got: 0 or -errno. want: expected errno, 0 for success. */
static void want(const char *what, long got, int expected)
{
	int e = got < 0 ? (int)-got : 0;

	if (e == expected) {
		if (verbose)
			out("# %s: %s as expected\n", what, errno_name(e));
		return;
	}
	bad_fails++;
	out("# %s: got %s expected %s\n", what, errno_name(e), errno_name(expected));
}

static void want_val(const char *what, long long got, long long expected)
{
	if (got == expected)
		return;
	bad_fails++;
	out("# %s: got %lld expected %lld\n", what, got, expected);
}

static long do_copy(int fd, uintptr_t dst, uintptr_t src, uint64_t len,
		    uint64_t mode, long long *copied)
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
	struct uffdio_zeropage z = { .range = { start, len }, .mode = mode,
				     .zeropage = 0x7777 };
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

/* The API handshake and the fd itself. */
static void bad_api(void)
{
	struct uffdio_api a;
	struct pollfd pfd;
	char byte;
	int fd, fd2;
	long r;

	/* flags other than O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY */
	fd = uffd_open(O_CLOEXEC | 0x10);
	want("userfaultfd(unknown flag)", fd < 0 ? fd : 0, EINVAL);
	if (fd >= 0)
		close(fd);

	fd = uffd_open_any();
	if (fd < 0) {
		want("userfaultfd()", fd, 0);
		return;
	}
	/* Every ioctl but UFFDIO_API, and read(), need the handshake first. */
	want("REGISTER before UFFDIO_API",
	     uffd_register(fd, (uintptr_t)&a & ~(page_size - 1), page_size,
			   UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("WAKE before UFFDIO_API", do_range(fd, UFFDIO_WAKE, page_size, page_size), EINVAL);
	want("read() before UFFDIO_API",
	     read(fd, &byte, 1) < 0 ? -errno : 0, EINVAL);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLERR)) {
		bad_fails++;
		out("# poll before UFFDIO_API: revents %#x expected POLLERR\n", pfd.revents);
	}

	r = uffd_api(fd, 0xbad, 0, &a);
	want("UFFDIO_API wrong api", r, EINVAL);
	/* userfaultfd_api() err_out: the reply is zeroed on failure */
	want_val("UFFDIO_API wrong api: features cleared", (long long)a.features, 0);
	want_val("UFFDIO_API wrong api: ioctls cleared", (long long)a.ioctls, 0);
	want("UFFDIO_API unknown feature bit 62", uffd_api(fd, UFFD_API, 1ULL << 62, NULL), EINVAL);
	/* Neither failure initialised the context: the real handshake works. */
	r = uffd_api(fd, UFFD_API, 0, &a);
	want("UFFDIO_API after failed ones", r, 0);
	if (!r && !(a.ioctls & (1ULL << _UFFDIO_REGISTER))) {
		bad_fails++;
		out("# UFFDIO_API: ioctls %#llx lack UFFDIO_REGISTER\n",
		    (unsigned long long)a.ioctls);
	}
	/* cmpxchg(&ctx->features, 0, ...) in userfaultfd_api(): once only */
	want("UFFDIO_API twice", uffd_api(fd, UFFD_API, 0, NULL), EINVAL);
	want("unknown ioctl", xioctl(fd, _IOWR(UFFDIO, 0x3e, __u64), &a), EINVAL);
	want("read() buffer smaller than uffd_msg", read(fd, &byte, 1) < 0 ? -errno : 0, EINVAL);
	{
		struct uffd_msg m;

		want("read() with nothing pending (O_NONBLOCK)",
		     read(fd, &m, sizeof(m)) < 0 ? -errno : 0, EAGAIN);
	}
	fd2 = uffd_new();
	if (fd2 >= 0)
		close(fd2);
	else
		want("second userfaultfd", fd2, 0);
	close(fd);
}

/* REGISTER, COPY, ZEROPAGE, WAKE, WRITEPROTECT, UNREGISTER. */
static void bad_ranges(void)
{
	const size_t ps = page_size;
	uintptr_t a, hole, src;
	long long cnt;
	int fd, fd2;
	long r;

	fd = uffd_new();
	if (fd < 0) {
		want("userfaultfd + UFFDIO_API", fd, 0);
		return;
	}
	a = (uintptr_t)map_anon(8 * ps, PROT_READ | PROT_WRITE, false);
	src = (uintptr_t)map_anon(2 * ps, PROT_READ | PROT_WRITE, false);
	hole = (uintptr_t)map_anon(ps, PROT_READ | PROT_WRITE, false);
	if (!a || !src || !hole) {
		close(fd);
		return;
	}
	unmap((void *)hole, ps);	/* now a hole nobody maps */
	memset((void *)src, 0, 2 * ps);
	*(uint64_t *)src = 0x1122334455667788ULL;
	*(uint64_t *)(src + 8) = 0x99aabbccddeeff00ULL;

	/* validate_range(): alignment, zero length, wrap and task size */
	want("REGISTER unaligned start", uffd_register(fd, a + 1, ps, UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("REGISTER unaligned len", uffd_register(fd, a, ps + 1, UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("REGISTER len 0", uffd_register(fd, a, 0, UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("REGISTER mode 0", uffd_register(fd, a, ps, 0), EINVAL);
	want("REGISTER unknown mode bit", uffd_register(fd, a, ps, UFFDIO_REGISTER_MODE_MISSING | (1ULL << 3)), EINVAL);
	want("REGISTER unmapped range", uffd_register(fd, hole, ps, UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("REGISTER start+len wraps", uffd_register(fd, a, (uint64_t)0 - ps, UFFDIO_REGISTER_MODE_MISSING), EINVAL);
	want("REGISTER beyond task size", uffd_register(fd, 1ULL << 63, ps, UFFDIO_REGISTER_MODE_MISSING), EINVAL);

	/* pages 0..3 registered MISSING, 4..7 mapped but not registered */
	r = uffd_register(fd, a, 4 * ps, UFFDIO_REGISTER_MODE_MISSING);
	want("REGISTER valid", r, 0);
	if (r)
		goto out;
	fd2 = uffd_new();
	if (fd2 >= 0) {
		want("REGISTER range owned by another uffd",
		     uffd_register(fd2, a, ps, UFFDIO_REGISTER_MODE_MISSING), EBUSY);
		close(fd2);
	}

	/* UFFDIO_COPY: dst and len page aligned; src need not be */
	want("COPY unaligned dst", do_copy(fd, a + 8, src, ps, 0, NULL), EINVAL);
	want("COPY unaligned len", do_copy(fd, a, src, ps + 1, 0, NULL), EINVAL);
	want("COPY len 0", do_copy(fd, a, src, 0, 0, NULL), EINVAL);
	want("COPY unknown mode bit", do_copy(fd, a, src, ps, 1ULL << 5, NULL), EINVAL);
	/* mfill_atomic(): MODE_WP needs a range registered with MODE_WP */
	want("COPY MODE_WP on a MISSING-only range", do_copy(fd, a, src, ps, UFFDIO_COPY_MODE_WP, NULL), EINVAL);
	r = do_copy(fd, a + 4 * ps, src, ps, 0, &cnt);
	want("COPY to a mapped, unregistered page", r, ENOENT);
	want_val("COPY to an unregistered page: copy field", cnt, -ENOENT);
	want("COPY across the end of the registered VMA", do_copy(fd, a + 3 * ps, src, 2 * ps, 0, NULL), ENOENT);
	want("COPY to an unmapped range", do_copy(fd, hole, src, ps, 0, NULL), ENOENT);
	r = do_copy(fd, a, hole, ps, 0, &cnt);
	want("COPY from an unmapped src", r, EFAULT);
	want_val("COPY from an unmapped src: copy field", cnt, -EFAULT);
	/* validate_unaligned_range() for src: an unaligned src is accepted */
	r = do_copy(fd, a, src + 8, ps, 0, &cnt);
	want("COPY from an unaligned src", r, 0);
	if (!r) {
		want_val("COPY from an unaligned src: copy field", cnt, (long long)ps);
		VOL_INC(checks);
		if (*(volatile uint64_t *)a != 0x99aabbccddeeff00ULL) {
			bad_fails++;
			report_mismatch(-1, 0, 0x99aabbccddeeff00ULL,
					*(volatile uint64_t *)a, "uffd-copy-unaligned-src");
		}
	}
	r = do_copy(fd, a, src, ps, 0, &cnt);
	want("COPY onto a populated page", r, EEXIST);
	want_val("COPY onto a populated page: copy field", cnt, -EEXIST);
	/* pages 1..2 with page 2 populated: one page copied, then -EAGAIN */
	want("COPY page 2", do_copy(fd, a + 2 * ps, src, ps, 0, NULL), 0);
	r = do_copy(fd, a + ps, src, 2 * ps, 0, &cnt);
	want("COPY of 2 pages, 2nd populated (partial)", r, EAGAIN);
	want_val("COPY partial: copy field", cnt, (long long)ps);
	VOL_ADD(uffd_copy, 3);

	/* UFFDIO_ZEROPAGE: only MODE_DONTWAKE exists */
	want("ZEROPAGE unknown mode bit", do_zeropage(fd, a + 3 * ps, ps, 1ULL << 1, NULL), EINVAL);
	want("ZEROPAGE unaligned start", do_zeropage(fd, a + 3 * ps + 16, ps, 0, NULL), EINVAL);
	want("ZEROPAGE unaligned len", do_zeropage(fd, a + 3 * ps, ps - 1, 0, NULL), EINVAL);
	want("ZEROPAGE unregistered page", do_zeropage(fd, a + 5 * ps, ps, 0, NULL), ENOENT);
	r = do_zeropage(fd, a, ps, 0, &cnt);
	want("ZEROPAGE onto a populated page", r, EEXIST);
	want_val("ZEROPAGE onto a populated page: zeropage field", cnt, -EEXIST);
	r = do_zeropage(fd, a + 3 * ps, ps, 0, &cnt);
	want("ZEROPAGE valid", r, 0);
	if (!r) {
		VOL_INC(uffd_zeropage);
		VOL_INC(checks);
		if (*(volatile uint64_t *)(a + 3 * ps) != 0) {
			bad_fails++;
			report_mismatch(-1, 3, 0, *(volatile uint64_t *)(a + 3 * ps),
					"uffd-zeropage");
		}
	}

	/* UFFDIO_WAKE */
	want("WAKE unaligned start", do_range(fd, UFFDIO_WAKE, a + 1, ps), EINVAL);
	want("WAKE len 0", do_range(fd, UFFDIO_WAKE, a, 0), EINVAL);
	want("WAKE valid, nobody waiting", do_range(fd, UFFDIO_WAKE, a, ps), 0);

	/* UFFDIO_WRITEPROTECT: mode checked first, then the VMA's WP mode */
	want("WRITEPROTECT unknown mode bit", do_wp(fd, a, ps, 1ULL << 2), EINVAL);
	want("WRITEPROTECT MODE_WP|MODE_DONTWAKE",
	     do_wp(fd, a, ps, UFFDIO_WRITEPROTECT_MODE_WP | UFFDIO_WRITEPROTECT_MODE_DONTWAKE), EINVAL);
	want("WRITEPROTECT unaligned", do_wp(fd, a + 8, ps, UFFDIO_WRITEPROTECT_MODE_WP), EINVAL);
	/* mwriteprotect_range(): !userfaultfd_wp(vma) is -ENOENT */
	want("WRITEPROTECT on a MISSING-only range", do_wp(fd, a, ps, UFFDIO_WRITEPROTECT_MODE_WP), ENOENT);

	/* UFFDIO_UNREGISTER */
	want("UNREGISTER unaligned start", do_range(fd, UFFDIO_UNREGISTER, a + 8, ps), EINVAL);
	want("UNREGISTER unaligned len", do_range(fd, UFFDIO_UNREGISTER, a, ps + 8), EINVAL);
	want("UNREGISTER len 0", do_range(fd, UFFDIO_UNREGISTER, a, 0), EINVAL);
	want("UNREGISTER unmapped range", do_range(fd, UFFDIO_UNREGISTER, hole, ps), EINVAL);
	want("UNREGISTER valid", do_range(fd, UFFDIO_UNREGISTER, a, 4 * ps), 0);
	want("UNREGISTER of an unregistered range", do_range(fd, UFFDIO_UNREGISTER, a, 4 * ps), 0);
	want("COPY after UNREGISTER", do_copy(fd, a + 3 * ps, src, ps, 0, NULL), ENOENT);
out:
	unmap((void *)a, 8 * ps);
	unmap((void *)src, 2 * ps);
	close(fd);
}

/* Races: a thread blocks in a MISSING fault, then something happens. */

/*
 * A race child may wait 3 s for the fault message, 5 s for the thread to
 * sleep (RACE_DONTWAKE) and 3 s for it to finish: 11 s when all is slow.
 */
#define RACE_TIMEOUT_MS	12000

enum race_kind { RACE_MUNMAP, RACE_CLOSE, RACE_UNREGISTER, RACE_DONTWAKE };
static const char *const race_name[] = {
	"munmap while a fault waits", "close(uffd) while a fault waits",
	"UNREGISTER while a fault waits", "COPY(DONTWAKE) then WAKE",
};

struct race_shared {
	atomic_int fails;
	atomic_int woken;	/* set just before the child's UFFDIO_WAKE */
	atomic_int tid;
	atomic_int done;
	uint64_t value;
};

static struct race_shared *race;
static volatile uint64_t *race_addr;

static void *race_fault_thread(void *arg)
{
	(void)arg;
	atomic_store(&race->tid, (int)syscall(SYS_gettid));
	race->value = *race_addr;	/* blocks in handle_userfault() */
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
static bool wait_asleep(int tid, int ms, int *wchan)
{
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

static bool wait_done(int ms)
{
	while (ms > 0 && !atomic_load(&race->done)) {
		sleep_ms(10);
		ms -= 10;
	}
	return atomic_load(&race->done);
}

static void race_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void race_fail(const char *fmt, ...)
{
	char buf[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&race->fails, 1);
	out("# %s\n", buf);
}

static void race_want(const char *what, long got, int expected)
{
	int e = got < 0 ? (int)-got : 0;

	if (e != expected)
		race_fail("%s: got %s expected %s", what, errno_name(e), errno_name(expected));
}

static void __attribute__((noreturn)) race_child(enum race_kind kind)
{
	const size_t ps = page_size;
	struct pollfd pfd;
	struct uffd_msg msg;
	pthread_t th;
	char *src;
	uintptr_t a;
	long long cnt;
	int fd, i, wchan;
	bool asleep;
	long r;

	child_enter();
	/*
	 * RACE_MUNMAP ends in SIGSEGV on purpose: the default action (not
	 * on_crash()), and no core dump for it.
	 */
	signal(SIGSEGV, SIG_DFL);
	prctl(PR_SET_DUMPABLE, 0);
	fd = uffd_new();
	a = (uintptr_t)mmap(NULL, ps, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || a == (uintptr_t)MAP_FAILED || src == MAP_FAILED) {
		race_fail("%s: setup failed", race_name[kind]);
		_exit(1);
	}
	memset(src, 0, ps);
	*(uint64_t *)src = make_tag(MIX_MAGIC, 77, 0, 0, 1);
	race_want("race REGISTER", uffd_register(fd, a, ps, UFFDIO_REGISTER_MODE_MISSING), 0);
	race_addr = (volatile uint64_t *)a;
	if (pthread_create(&th, NULL, race_fault_thread, NULL)) {
		race_fail("%s: pthread_create", race_name[kind]);
		_exit(1);
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 3000) != 1 || read(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		race_fail("%s: no fault message within 3 s", race_name[kind]);
		_exit(1);
	}
	if (msg.event != UFFD_EVENT_PAGEFAULT ||
	    (msg.arg.pagefault.address & ~(uint64_t)(ps - 1)) != a)
		race_fail("%s: message event %u address %#llx, expected a fault at %#lx",
			  race_name[kind], msg.event,
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
		 * SIGSEGV kills this child, which the parent expects.
		 */
		if (munmap((void *)a, ps))
			race_fail("munmap: %s", errno_name(errno));
		r = do_copy(fd, a, (uintptr_t)src, ps, 0, &cnt);
		race_want("COPY into the unmapped range", r, ENOENT);
		if (cnt != -ENOENT)
			race_fail("COPY into the unmapped range: copy field %lld expected %d",
				  cnt, -ENOENT);
		/* An early release would SIGSEGV now, with woken still 0. */
		sleep_ms(50);
		atomic_store(&race->woken, 1);
		race_want("WAKE the unmapped range", do_range(fd, UFFDIO_WAKE, a, ps), 0);
		wait_done(3000);
		if (atomic_load(&race->done))
			race_fail("thread read %#llx from an unmapped page",
				  (unsigned long long)race->value);
		else
			race_fail("faulting thread still blocked 3 s after UFFDIO_WAKE");
		_exit(3);
	case RACE_CLOSE:
		/*
		 * userfaultfd_release(): marks the ctx released, unregisters
		 * every VMA, wakes all waiters. The retried fault is an
		 * ordinary anonymous fault: the thread reads zero.
		 */
		close(fd);
		if (!wait_done(3000))
			race_fail("faulting thread still blocked 3 s after close(uffd)");
		else if (race->value != 0)
			race_fail("after close(uffd) read %#llx expected 0",
				  (unsigned long long)race->value);
		break;
	case RACE_UNREGISTER:
		/* userfaultfd_unregister() wakes waiters of a MISSING range */
		race_want("UNREGISTER with a waiter", do_range(fd, UFFDIO_UNREGISTER, a, ps), 0);
		if (!wait_done(3000))
			race_fail("faulting thread still blocked 3 s after UNREGISTER");
		else if (race->value != 0)
			race_fail("after UNREGISTER read %#llx expected 0",
				  (unsigned long long)race->value);
		break;
	case RACE_DONTWAKE:
		/*
		 * UFFDIO_COPY takes only the per-VMA read lock: a COPY
		 * between set_current_state() and userfaultfd_must_wait()
		 * in userfaultfd_fault_queue() makes the thread skip the
		 * sleep, with no wakeup involved. Only a thread seen off the
		 * runqueue must stay blocked after COPY(DONTWAKE).
		 */
		asleep = wait_asleep(atomic_load(&race->tid), 5000, &wchan);
		if (!asleep)
			out("# %s: faulting thread not seen asleep in 5 s (wchan %s): not checking that DONTWAKE leaves it blocked\n",
			    race_name[kind], wchan < 0 ? "missing" : wchan ? "set, state not S" : "0");
		r = do_copy(fd, a, (uintptr_t)src, ps, UFFDIO_COPY_MODE_DONTWAKE, &cnt);
		race_want("COPY(DONTWAKE)", r, 0);
		sleep_ms(100);
		if (asleep && atomic_load(&race->done))
			race_fail("COPY(DONTWAKE) woke the faulting thread");
		race_want("WAKE after DONTWAKE", do_range(fd, UFFDIO_WAKE, a, ps), 0);
		if (!wait_done(3000))
			race_fail("faulting thread still blocked 3 s after UFFDIO_WAKE");
		else if (race->value != *(uint64_t *)src)
			race_fail("after COPY+WAKE read %#llx expected %#llx",
				  (unsigned long long)race->value,
				  (unsigned long long)*(uint64_t *)src);
		break;
	}
	_exit(0);
}

static void bad_race(enum race_kind kind)
{
	int st = 0, ms;
	pid_t pid;

	memset(race, 0, sizeof(*race));
	pid = fork();
	if (pid == 0)
		race_child(kind);
	if (pid < 0) {
		want("fork", -errno, 0);
		return;
	}
	VOL_INC(forks);
	/* Bounded: anything still running after RACE_TIMEOUT_MS is a hang. */
	for (ms = 0; ms < RACE_TIMEOUT_MS; ms += 10) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		sleep_ms(10);
	}
	if (ms >= RACE_TIMEOUT_MS) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		bad_fails++;
		out("# %s: child hung, killed after %d s\n", race_name[kind],
		    RACE_TIMEOUT_MS / 1000);
		return;
	}
	bad_fails += atomic_load(&race->fails);
	if (kind == RACE_MUNMAP) {
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSEGV) {
			bad_fails++;
			out("# %s: child status %#x, expected death by SIGSEGV\n",
			    race_name[kind], st);
		} else if (!atomic_load(&race->woken)) {
			bad_fails++;
			out("# %s: SIGSEGV before UFFDIO_WAKE: munmap or COPY released the waiter\n",
			    race_name[kind]);
		}
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		bad_fails++;
		out("# %s: child status %#x, expected exit 0\n", race_name[kind], st);
	}
	if (verbose)
		out("# %s: done, status %#x\n", race_name[kind], st);
}

static void case_uffd_bad_input(void)
{
	const char *name = "uffd_bad_input";
	int fd;

	cur_case = name;
	fd = uffd_open_any();
	if (fd == -ENOSYS) {
		ksft_test_result_code(KSFT_SKIP, name, "userfaultfd: ENOSYS");
		return;
	}
	if (fd >= 0)
		close(fd);
	bad_fails = 0;
	bad_api();
	bad_ranges();
	race = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (race == MAP_FAILED) {
		bad_fails++;
		out("# mmap(race page): %s\n", errno_name(errno));
	} else {
		bad_race(RACE_MUNMAP);
		bad_race(RACE_CLOSE);
		bad_race(RACE_UNREGISTER);
		bad_race(RACE_DONTWAKE);
		munmap(race, page_size);
	}
	ksft_test_result(bad_fails == 0, "%s\n", name);
}

/* ================================================================== */
/* Case 4: pageout_swapin_verify */

#define PO_MIB 4

static uint64_t po_word(uint64_t tag, size_t w)
{
	return tag ^ (w * 0x9e3779b97f4a7c15ULL);
}

static void po_fill(uintptr_t b, size_t npages, int id, unsigned int ver, unsigned int step)
{
	size_t p, w, nw = page_size / 8;

	for (p = 0; p < npages; p += step) {
		uint64_t tag = make_tag(PO_MAGIC, id, 0, p, ver);
		uint64_t *pg = (uint64_t *)(b + p * page_size);

		for (w = 0; w < nw; w++)
			pg[w] = po_word(tag, w);
	}
}

static unsigned long po_verify(uintptr_t b, size_t npages, int id,
			       const uint16_t *ver, const char *op)
{
	size_t p, w, nw = page_size / 8;
	unsigned long bad = 0;

	for (p = 0; p < npages; p++) {
		uint64_t tag = make_tag(PO_MAGIC, id, 0, p, ver[p]);
		volatile uint64_t *pg = (volatile uint64_t *)(b + p * page_size);

		VOL_INC(checks);
		for (w = 0; w < nw; w++) {
			uint64_t v = pg[w];

			if (v != po_word(tag, w)) {
				bad++;
				report_mismatch(id, p, po_word(tag, w), v, op);
				break;
			}
		}
	}
	return bad;
}

/* Pages of [b, b+npages) that pagemap says are in swap / present. */
static bool po_pagemap(uintptr_t b, size_t npages, unsigned long *swapped,
		       unsigned long *present)
{
	uint64_t *pm = calloc(npages, sizeof(uint64_t));
	size_t p;
	ssize_t n;
	int fd;

	*swapped = *present = 0;
	if (!pm)
		return false;
	fd = open("/proc/self/pagemap", O_RDONLY);
	n = fd < 0 ? -1 : pread(fd, pm, npages * 8, (b / page_size) * 8);
	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)(npages * 8)) {
		free(pm);
		return false;
	}
	for (p = 0; p < npages; p++) {
		*swapped += (pm[p] >> 62) & 1;
		*present += (pm[p] >> 63) & 1;
	}
	free(pm);
	return true;
}

static void case_pageout_swapin_verify(void)
{
	const char *name = "pageout_swapin_verify";
	size_t npages = (size_t)PO_MIB << 20;
	struct case_mark mark;
	uintptr_t b[2];
	uint16_t *ver[2];
	int k, round;
	size_t p;
	bool skip = false;

	cur_case = name;
	case_mark(&mark);
	npages /= page_size;
	for (k = 0; k < 2; k++) {
		b[k] = (uintptr_t)map_anon(npages * page_size, PROT_READ | PROT_WRITE, k == 1);
		ver[k] = calloc(npages, sizeof(uint16_t));
		if (!b[k] || !ver[k]) {
			ksft_test_result(false, "%s\n", name);
			return;
		}
		for (p = 0; p < npages; p++)
			ver[k][p] = 1;
		po_fill(b[k], npages, 200 + k, 1, 1);
	}
	for (round = 0; round < 2 && !skip; round++) {
		if (round == 1) {
			/* Rewrite every other page: swapped-in pages get dirty again. */
			for (k = 0; k < 2; k++) {
				po_fill(b[k], npages, 200 + k, 2, 2);
				for (p = 0; p < npages; p += 2)
					ver[k][p] = 2;
			}
		}
		for (k = 0; k < 2; k++) {
			unsigned long sw, pr;

			if (madvise((void *)b[k], npages * page_size, MADV_PAGEOUT)) {
				if (errno == EINVAL) {
					skip = true;
					break;
				}
				note_error("madvise(PAGEOUT): %s", errno_name(errno));
			} else {
				VOL_INC(pageout);
			}
			/* Before any touch: what actually went to swap. */
			if (po_pagemap(b[k], npages, &sw, &pr)) {
				out("# %s: round %d %s: %lu/%zu pages swapped, %lu present (pagemap)\n",
				    name, round, k ? "shmem" : "private", sw, npages, pr);
				/*
				 * With swap on, private anon pages that nothing
				 * else maps must go to swap: otherwise no swap-in
				 * fault follows and the case proves nothing.
				 */
				if (!k && !sw && swap_active())
					note_error("round %d: swap is on, but MADV_PAGEOUT swapped out no private page",
						   round);
			} else
				out("# %s: round %d %s: swapped unknown (pagemap unreadable)\n",
				    name, round, k ? "shmem" : "private");
			po_verify(b[k], npages, 200 + k, ver[k],
				  k ? "swapin-shmem" : "swapin-private");
		}
	}
	for (k = 0; k < 2; k++) {
		unmap((void *)b[k], npages * page_size);
		free(ver[k]);
	}
	if (skip) {
		ksft_test_result_code(KSFT_SKIP, name, "MADV_PAGEOUT: EINVAL");
		return;
	}
	ksft_test_result(case_clean(&mark, name, 0), "%s\n", name);
}

/* ================================================================== */

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-s SEED] [-t SECONDS] [-j THREADS] [-v]\n", prog);
	exit(1);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	bool have_seed = false;
	uint64_t budget;
	int opt;

	while ((opt = getopt(argc, argv, "s:t:j:vh")) != -1) {
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
		default:
			usage(argv[0]);
		}
	}
	if (!have_seed)
		run_seed = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
	out("# seed %llu\n", (unsigned long long)run_seed);

	page_size = sysconf(_SC_PAGESIZE);
	{
		void *v = mmap(NULL, sizeof(struct volume), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (v != MAP_FAILED)
			vol = v;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog;
	sigaction(SIGALRM, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	/*
	 * Everything below ends by then, even under TCG emulation. Beyond
	 * the budget: a forked checker may take CHILD_TIMEOUT (20 s) at the
	 * deadline, the four uffd races up to RACE_TIMEOUT_MS (12 s) each,
	 * and pageout_swapin_verify is slow under KASAN on TCG. The plan runs
	 * "fault_stress -t 20" with a 300 s timeout: 20 + 90 fits well.
	 */
	alarm(run_seconds + 90);

	ksft_print_header();
	ksft_set_plan(NUM_CASES);
	out("# fault_stress: seed=%llu seconds=%u threads=%u page_size=%zu (replay: -s %llu)\n",
	    (unsigned long long)run_seed, run_seconds, nr_threads, page_size,
	    (unsigned long long)run_seed);

	budget = run_seconds * 1000000000ULL;
	case_stress_mixed(budget * 60 / 100);
	case_fork_vs_fault(budget * 30 / 100);
	case_uffd_bad_input();
	case_pageout_swapin_verify();

	cur_case = "summary";
	out("# volume checks=%lu forks=%lu uffd_copy=%lu uffd_zeropage=%lu mmap=%lu munmap=%lu mprotect=%lu mremap=%lu mremap_split=%lu dontneed=%lu pageout=%lu mismatches=%lu\n",
	    atomic_load(&vol->checks), atomic_load(&vol->forks),
	    atomic_load(&vol->uffd_copy), atomic_load(&vol->uffd_zeropage),
	    atomic_load(&vol->mmap), atomic_load(&vol->munmap),
	    atomic_load(&vol->mprotect), atomic_load(&vol->mremap),
	    atomic_load(&vol->mremap_split),
	    atomic_load(&vol->dontneed), atomic_load(&vol->pageout),
	    atomic_load(&vol->mismatches));
	ksft_finished();
}
