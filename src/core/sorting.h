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

/*
 * Sorts v ascending by least significant digit radix, 16 bits a pass, as
 * many passes as its largest key has bits (two or three for keys made of
 * two product indexes), through a scratch copy of v: tens of millions of
 * keys sort in a few sweeps of memory, where a comparison sort takes a
 * second or more.  (Called once per build: no shortcut for few keys.)
 */
extern void ups_sort_uint64(uint64_t *v, size_t n);

#endif							/* SORTING_H */
