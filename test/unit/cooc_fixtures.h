/*
 * cooc_fixtures.h
 *		Fixtures shared by the unit tests of stored counts (cooc_fixtures.c).
 */
#ifndef COOC_FIXTURES_H
#define COOC_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "cooccur.h"

extern void random_lines(CoocLines *l, uint64_t seed, int first_order, int orders, int products);

/*
 * The chunks of c of at most max_pairs pairs each, each decoded from its
 * flat form (as a reader sees it), with the id of each one's first product;
 * the arrays are the caller's to free.
 */
extern size_t chunks_of(const CoocCounts *c, size_t max_pairs, CoocCounts **out, int64_t **first_ids);

#endif
