/*
 * host_glue.c
 *		The server side of src/core/ups_host.h: core allocations go to the
 *		current memory context, cancellation to CHECK_FOR_INTERRUPTS().
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "ups_host.h"

void *
ups_alloc(size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE);
}

void *
ups_alloc0(size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

void *
ups_realloc(void *ptr, size_t size)
{
	return repalloc_huge(ptr, size);
}

void
ups_free(void *ptr)
{
	if (ptr)
		pfree(ptr);
}

void
ups_check_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}
