/*
 * ups_host.h
 *		What the pure C core needs from whoever hosts it.
 *
 * The core (src/core) includes no server headers so that it can be unit
 * tested, fuzzed and run under sanitizers as a plain program.  The host
 * provides memory and a cancellation check: inside the server these map to
 * palloc in the current memory context and CHECK_FOR_INTERRUPTS()
 * (src/host_glue.c); in the unit tests to malloc and a no-op.
 *
 * ups_alloc never returns NULL: the server version raises an out-of-memory
 * error, the test version aborts.
 */
#ifndef UPS_HOST_H
#define UPS_HOST_H

#include <stddef.h>

extern void *ups_alloc(size_t size);
extern void *ups_alloc0(size_t size);
extern void *ups_realloc(void *ptr, size_t size);
extern void ups_free(void *ptr);
extern void ups_check_interrupts(void);

#endif							/* UPS_HOST_H */
