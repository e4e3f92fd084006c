/*
 * sorting.c
 *		Sorting the core shares (see sorting.h).
 */
#include "sorting.h"

#include <stdlib.h>

static int
uint32_cmp(const void *pa, const void *pb)
{
	uint32_t	a = *(const uint32_t *) pa;
	uint32_t	b = *(const uint32_t *) pb;

	return a < b ? -1 : (a > b ? 1 : 0);
}

/*
 * Insertion sort for a few, else a quicksort with the comparison inlined
 * (median of three; qsort beyond a depth that only an adversarial input
 * reaches).
 */
static void
sort_depth(uint32_t *v, size_t n, int depth)
{
	size_t		i;

	while (n > 32)
	{
		uint32_t	a = v[0],
					b = v[n / 2],
					c = v[n - 1],
					pivot,
					t;
		size_t		lo = 0,
					hi = n - 1;

		if (depth-- == 0)
		{
			qsort(v, n, sizeof(uint32_t), uint32_cmp);
			return;
		}
		pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		for (;;)
		{
			while (v[lo] < pivot)
				lo++;
			while (v[hi] > pivot)
				hi--;
			if (lo >= hi)
				break;
			t = v[lo];
			v[lo] = v[hi];
			v[hi] = t;
			lo++;
			hi--;
		}
		/* v[0..hi] <= pivot <= v[hi+1..n-1]: recurse on the smaller side */
		if (hi + 1 < n - hi - 1)
		{
			sort_depth(v, hi + 1, depth);
			v += hi + 1;
			n -= hi + 1;
		}
		else
		{
			sort_depth(v + hi + 1, n - hi - 1, depth);
			n = hi + 1;
		}
	}
	for (i = 1; i < n; i++)
	{
		uint32_t	x = v[i];
		size_t		j = i;

		while (j > 0 && v[j - 1] > x)
		{
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

void
ups_sort_uint32(uint32_t *v, size_t n)
{
	sort_depth(v, n, 64);
}
