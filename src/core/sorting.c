/*
 * sorting.c
 *		Sorting the core shares (see sorting.h).
 */
#include "sorting.h"

#include <stdlib.h>
#include <string.h>

#include "ups_host.h"

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

void
ups_sort_uint64(uint64_t *v, size_t n)
{
	uint64_t	all = 0;
	uint64_t   *from = v,
			   *to,
			   *scratch;
	size_t	   *count;
	size_t		i;
	int			shift;

	if (n < 2)
		return;
	for (i = 0; i < n; i++)
		all |= v[i];
	scratch = ups_alloc(n * sizeof(uint64_t));
	count = ups_alloc(65536 * sizeof(size_t));
	to = scratch;
	for (shift = 0; shift < 64 && (all >> shift) != 0; shift += 16)
	{
		size_t		sum = 0;

		memset(count, 0, 65536 * sizeof(size_t));
		for (i = 0; i < n; i++)
			count[(from[i] >> shift) & 0xFFFF]++;
		for (i = 0; i < 65536; i++)
		{
			size_t		c = count[i];

			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			to[count[(from[i] >> shift) & 0xFFFF]++] = from[i];
		/* the next pass reads what this one wrote */
		to = from;
		from = from == v ? scratch : v;
		ups_check_interrupts();
	}
	if (from != v)
		memcpy(v, from, n * sizeof(uint64_t));
	ups_free(count);
	ups_free(scratch);
}
