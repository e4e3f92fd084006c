/*
 * refresh_malloc.c
 *		While a tenant's models are built, the process keeps the memory it
 *		frees for its next allocations instead of handing it back to the
 *		kernel at every free().
 *
 * Why: a refresh allocates and frees the same large buffers over and over,
 * through the server as much as through upsell (a detoasted 100 MB chunk of
 * pair counts, a tuplestore, the tuple INSERT forms of it, a sort's memory,
 * the builders' hash tables).  glibc's malloc serves each block above its
 * mmap threshold (128 kB, rising to at most 32 MB as blocks are freed) with
 * a fresh mmap and unmaps it at free(); the heap's free top beyond its trim
 * threshold goes back to the kernel too.  Every page of the next buffer is
 * then a page fault, zeroed by the kernel: on this project's virtualised
 * machines the faults were about a sixth of an incremental refresh's backend
 * CPU at 10M order lines.  Held here, the freed pages are reused as they
 * are: the backend's CPU went from 17.5-17.9 s to 14.0-15.2 s (2026-12-04),
 * and its peak memory went down (freed memory is reused before new memory
 * is mapped: 323 MiB against 467 MiB); what changes is that it stays mapped
 * until the build ends.
 *
 * One build hands its memory back meanwhile: a full refresh's count of
 * every line (_build_cooccurrence_chunks), whose blocks are the refresh's
 * largest, each freed one too small for the next; held, they took a
 * 30M-line shop's backend from 915 MiB to 1.3 GiB (2026-12-06).
 *
 * Only the refreshing backend's transaction (and a side build's worker,
 * which exits after it) holds memory so: at the end of the build the
 * thresholds are glibc's initial ones again (128 kB; glibc no longer adjusts
 * them then) and what is free is returned (malloc_trim); a build that fails
 * gets the thresholds back when its transaction aborts.  Without glibc this
 * does nothing.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "fmgr.h"

#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_hold_freed_memory);

#ifdef __GLIBC__
/* above any one allocation of a build: served by the heap, kept when freed */
#define HOLD_THRESHOLD		(1024 * 1024 * 1024)
/* glibc's initial mmap and trim thresholds (mallopt(3)) */
#define GLIBC_THRESHOLD		(128 * 1024)

static bool holding = false;
static bool callback_registered = false;

static void
release_thresholds(bool trim)
{
	if (!holding)
		return;
	(void) mallopt(M_MMAP_THRESHOLD, GLIBC_THRESHOLD);
	(void) mallopt(M_TRIM_THRESHOLD, GLIBC_THRESHOLD);
	holding = false;
	if (trim)
		(void) malloc_trim(0);
}

/*
 * A build that errors out: its memory is freed after this (the
 * transaction's contexts go later), and the restored trim threshold returns
 * the heap's free top as it is freed.
 */
static void
release_at_transaction_end(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			release_thresholds(false);
			break;
		default:
			break;
	}
}
#endif

/*
 * upsell_hold_freed_memory(true) from here to the end of the transaction, or
 * to upsell_hold_freed_memory(false), which also returns the free memory.
 * Returns whether the process held it before.
 */
bool
upsell_hold_freed_memory_set(bool hold)
{
#ifdef __GLIBC__
	bool		was = holding;

	if (!hold)
	{
		release_thresholds(true);
		return was;
	}
	if (!callback_registered)
	{
		RegisterXactCallback(release_at_transaction_end, NULL);
		callback_registered = true;
	}
	if (mallopt(M_MMAP_THRESHOLD, HOLD_THRESHOLD) == 1 &&
		mallopt(M_TRIM_THRESHOLD, HOLD_THRESHOLD) == 1)
		holding = true;
	else
	{
		/* (one of them taken: both back) */
		holding = true;
		release_thresholds(false);
	}
	return was;
#else
	(void) hold;
	return false;
#endif
}

/* _hold_freed_memory(hold boolean) returns boolean: the SQL face of the above */
Datum
upsell_hold_freed_memory(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(upsell_hold_freed_memory_set(PG_GETARG_BOOL(0)));
}
