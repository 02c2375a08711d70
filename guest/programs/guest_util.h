/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers that the lab's guest programs (guest/programs/<name>.c, each
 * compiled on its own into a static binary) share.
 */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>

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

#endif /* GUEST_UTIL_H */
