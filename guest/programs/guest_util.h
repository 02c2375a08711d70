/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers that the lab's guest programs (guest/programs/<name>.c, each
 * compiled on its own into a static binary and linked with the tree's
 * tools/testing/selftests/mm/vm_util.c) share, beside what vm_util.h and
 * kselftest_harness.h give.
 */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"

/* Whether /proc/swaps lists an active swap area (a line after its header). */
static inline bool swap_active(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[256];
	int n = 0;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 1;
}

/*
 * A userfaultfd opened with @flags (O_CLOEXEC, O_NONBLOCK,
 * UFFD_USER_MODE_ONLY), by the system call or, where that is refused
 * (vm.unprivileged_userfaultfd, seccomp), through /dev/userfaultfd; no
 * UFFDIO_API yet. -errno of the system call on failure.
 */
static inline int uffd_open(int flags)
{
	long fd = syscall(__NR_userfaultfd, flags);
	int err, dev;

	if (fd >= 0)
		return (int)fd;
	err = errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	close(dev);
	return fd < 0 ? -err : (int)fd;
}

/*
 * A userfaultfd as uffd_open(@flags) gives it, with UFFDIO_API done for
 * @features; -errno of whichever step failed.
 */
static inline int uffd_open_api(int flags, uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_open(flags);
	int err;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/*
 * Sets the harness's timeout of every test of @fixture (NULL: of every
 * test) to @secs. TEST_F_TIMEOUT() fixes a timeout when the program is
 * compiled, but the lab's programs scale their work with their options
 * (-t SECONDS, -p PAGES, -r REPEATS), so main() sets the timeouts from them
 * before test_harness_run() reads them. The list of tests, __fixture_list,
 * is the harness's own: the same in 6.12's and mainline's
 * kselftest_harness.h.
 */
static inline void harness_set_timeout(const char *fixture, unsigned long secs)
{
	struct __fixture_metadata *f;
	struct __test_metadata *t;

	if (secs > INT_MAX / 1000)	/* the harness waits in ms, in an int */
		secs = INT_MAX / 1000;
	for (f = __fixture_list; f; f = f->next) {
		if (fixture && strcmp(f->name, fixture))
			continue;
		for (t = f->tests; t; t = t->next)
			t->timeout = secs;
	}
}

#endif /* GUEST_UTIL_H */
