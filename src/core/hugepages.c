/*
 * hugepages.c
 *		Asks the kernel to back a large, freshly allocated buffer with huge
 *		pages (see ups_host.h).
 *
 * Why: the counting core's big arrays (the lines, their product numbers,
 * the spans, the flat result) are fresh memory on every count, mapped by the
 * C library with mmap.  Touched 4 kB page by page, each page is a fault into
 * the kernel; on this project's machines (virtualised, transparent huge
 * pages in "madvise" mode) the faults were about 60% of a count of FIMI
 * retail: cooc_bench's count took 229 ms of CPU with 4 kB pages and 94 ms
 * with this hint (2026-12-02, load 6).  2 MB pages take 512 times fewer
 * faults.  The hint is only a hint: where the kernel has no huge page to
 * give, or the system has none, the memory is the same ordinary memory.
 */
#ifdef __linux__
#define _DEFAULT_SOURCE			/* madvise, MADV_HUGEPAGE */
#include <sys/mman.h>
#endif
#include <stdint.h>

#include "ups_host.h"

#define HUGE_PAGE	((uintptr_t) 2 << 20)

void
ups_advise_huge(void *ptr, size_t size)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
	uintptr_t	from = ((uintptr_t) ptr + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	uintptr_t	to = ((uintptr_t) ptr + size) & ~(HUGE_PAGE - 1);

	/* only whole huge pages inside the buffer: never advise a neighbour */
	if (size >= UPS_HUGE_MIN && to > from)
		(void) madvise((void *) from, to - from, MADV_HUGEPAGE);
#else
	(void) ptr;
	(void) size;
#endif
}
