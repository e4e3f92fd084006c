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

/*
 * Provided by the core for its hosts (src/core/hugepages.c): asks for huge
 * pages under the whole 2 MB pages of a fresh buffer of at least
 * UPS_HUGE_MIN bytes, before it is first touched; otherwise does nothing.
 * A host's ups_alloc calls it, so every large array of the core is faulted
 * in 2 MB at a time rather than 4 kB.
 */
#define UPS_HUGE_MIN	((size_t) 2 << 20)
extern void ups_advise_huge(void *ptr, size_t size);

#endif							/* UPS_HOST_H */
