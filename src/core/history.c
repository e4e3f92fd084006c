/*
 * history.c
 *		Purchase histories in one pass; see history.h.
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "ups_host.h"

#define PH_FREE INT64_MIN

static int
cmp_line(const void *a, const void *b)
{
	const PhLine *x = a;
	const PhLine *y = b;

	if (x->product != y->product)
		return x->product < y->product ? -1 : 1;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

void
ph_sort_lines(PhLine *lines, size_t n)
{
	if (n > 1)
		qsort(lines, n, sizeof(PhLine), cmp_line);
}

size_t
ph_run_length(const PhLine *lines, size_t n, size_t start)
{
	size_t		end = start + 1;

	while (end < n && lines[end].product == lines[start].product)
		end++;
	return end - start;
}

static void
init_slots(PhProductStats *slots, size_t nslots)
{
	memset(slots, 0, nslots * sizeof(PhProductStats));
	for (size_t i = 0; i < nslots; i++)
		slots[i].product = PH_FREE;
}

void
ph_products_init(PhProducts *p)
{
	memset(p, 0, sizeof *p);
	p->nslots = 1024;
	p->slots = ups_alloc(p->nslots * sizeof(PhProductStats));
	init_slots(p->slots, p->nslots);
}

static PhProductStats *
lookup(PhProductStats *slots, size_t nslots, int64_t product)
{
	size_t		i = (size_t) (ups_mix64((uint64_t) product) & (nslots - 1));

	while (slots[i].product != PH_FREE && slots[i].product != product)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

static void
grow(PhProducts *p)
{
	size_t		nslots = p->nslots * 2;
	PhProductStats *slots = ups_alloc(nslots * sizeof(PhProductStats));

	init_slots(slots, nslots);
	for (size_t i = 0; i < p->nslots; i++)
		if (p->slots[i].product != PH_FREE)
			*lookup(slots, nslots, p->slots[i].product) = p->slots[i];
	ups_free(p->slots);
	p->slots = slots;
	p->nslots = nslots;
}

void
ph_products_add(PhProducts *p, int64_t product, const IvStats *st)
{
	PhProductStats *s;

	if (st->purchases < 1)
		return;
	/* load factor at most 1/2 */
	if (2 * (p->n + 1) > p->nslots)
		grow(p);
	s = lookup(p->slots, p->nslots, product);
	if (s->product == PH_FREE)
	{
		s->product = product;
		p->n++;
	}
	s->customers++;
	p->pairs++;
	if (st->purchases >= 2)
	{
		s->repeaters++;
		p->repeat_pairs++;
		if (s->ngaps == s->cap)
		{
			s->cap = s->cap ? 2 * s->cap : 4;
			s->gaps = s->gaps ? ups_realloc(s->gaps, s->cap * sizeof(double))
				: ups_alloc(s->cap * sizeof(double));
		}
		s->gaps[s->ngaps++] = st->median_gap;
	}
	if (st->purchases >= 3 && st->has_cv && st->cv < 0.5)
		s->regulars++;
}

bool
ph_consumable(int64_t customers, int64_t repeaters, int64_t shop_pairs, int64_t shop_repeat_pairs)
{
	double		floor;

	if (repeaters < 2 || customers <= 0 || shop_pairs <= 0)
		return false;
	floor = 0.5 * (double) shop_repeat_pairs / (double) shop_pairs;
	if (floor < 0.02)
		floor = 0.02;
	return (double) repeaters / (double) customers >= floor;
}

static int
cmp_product(const void *a, const void *b)
{
	const PhProductStats *x = a;
	const PhProductStats *y = b;

	return (x->product > y->product) - (x->product < y->product);
}

PhProductStats *
ph_products_finish(PhProducts *p, size_t *n)
{
	size_t		m = 0;

	/* compact the table in place, then sort by product */
	for (size_t i = 0; i < p->nslots; i++)
		if (p->slots[i].product != PH_FREE)
			p->slots[m++] = p->slots[i];
	qsort(p->slots, m, sizeof(PhProductStats), cmp_product);
	for (size_t i = 0; i < m; i++)
	{
		PhProductStats *s = &p->slots[i];

		/* sorts the gaps: they stay, sorted, for the caller */
		s->has_population = s->ngaps > 0;
		s->population_days = s->has_population ? iv_median(s->gaps, s->ngaps) : 0;
		s->consumable = ph_consumable(s->customers, s->repeaters, p->pairs, p->repeat_pairs);
		ups_check_interrupts();
	}
	/* the free marks are gone: the table is only good for reading now */
	p->n = m;
	p->finished = true;
	*n = m;
	return p->slots;
}

void
ph_products_free(PhProducts *p)
{
	for (size_t i = 0; p->slots && i < (p->finished ? p->n : p->nslots); i++)
		if ((p->finished || p->slots[i].product != PH_FREE) && p->slots[i].gaps)
			ups_free(p->slots[i].gaps);
	if (p->slots)
		ups_free(p->slots);
	p->slots = NULL;
	p->nslots = p->n = 0;
}

size_t
ph_multiset_update(const double *base, size_t nbase, double *remove, size_t nremove,
				   const double *add, size_t nadd, double *out)
{
	size_t		n = 0,
				r = 0;

	/* base is sorted; each value to remove takes out one equal element */
	if (nremove > 1)
		qsort(remove, nremove, sizeof(double), iv_cmp_double);
	for (size_t i = 0; i < nbase; i++)
	{
		while (r < nremove && remove[r] < base[i])
			r++;			/* not in base: nothing to take out */
		if (r < nremove && remove[r] == base[i])
		{
			r++;
			continue;
		}
		out[n++] = base[i];
	}
	for (size_t i = 0; i < nadd; i++)
		out[n++] = add[i];
	if (n > 1)
		qsort(out, n, sizeof(double), iv_cmp_double);
	return n;
}
