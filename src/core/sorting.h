/*
 * sorting.h
 *		Sorting the core shares.
 */
#ifndef SORTING_H
#define SORTING_H

#include <stddef.h>
#include <stdint.h>

/*
 * Sorts v ascending: by insertion when few (the items of an order, the
 * partners of most products, a customer's products), else a quicksort with
 * the comparison inlined.
 */
extern void ups_sort_uint32(uint32_t *v, size_t n);

#endif							/* SORTING_H */
