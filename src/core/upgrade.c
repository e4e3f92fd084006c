/*
 * upgrade.c
 *		Upgrade and downsell candidates of a whole catalog in one pass over the
 *		order history (see upgrade.h for the rules and the scores).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"
#include "ups_host.h"

/* Products sorted by id, for mapping line product ids to indexes. */
typedef struct IdIndex
{
	int64_t		id;
	uint32_t	index;
} IdIndex;

/* ups_realloc of NULL is not allowed (the server's repalloc) */
static void *
grow(void *ptr, size_t size)
{
	return ptr ? ups_realloc(ptr, size) : ups_alloc(size);
}

static int
cmp_id_index(const void *a, const void *b)
{
	int64_t		x = ((const IdIndex *) a)->id,
				y = ((const IdIndex *) b)->id;

	return (x > y) - (x < y);
}

static int
cmp_line(const void *a, const void *b)
{
	const UpgLine *x = a,
			   *y = b;

	if (x->customer != y->customer)
		return (x->customer > y->customer) - (x->customer < y->customer);
	if (x->has_time != y->has_time)
		return x->has_time ? -1 : 1;
	if (x->time != y->time)
		return (x->time > y->time) - (x->time < y->time);
	return (x->product > y->product) - (x->product < y->product);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

/* Pools (groups or categories) sorted by (pool, price, id). */
typedef struct PoolSort
{
	const UpgProduct *products;
	bool		by_group;
} PoolSort;

static PoolSort pool_sort_ctx;

static int
cmp_pool(const void *a, const void *b)
{
	const UpgProduct *x = &pool_sort_ctx.products[*(const uint32_t *) a];
	const UpgProduct *y = &pool_sort_ctx.products[*(const uint32_t *) b];
	int32_t		px = pool_sort_ctx.by_group ? x->group : x->category;
	int32_t		py = pool_sort_ctx.by_group ? y->group : y->category;

	if (px != py)
		return (px > py) - (px < py);
	if (x->price != y->price)
		return (x->price > y->price) - (x->price < y->price);
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * Indexes of the products having a pool, sorted; pos[i] is product i's place
 * in the sorted array (or SIZE_MAX without a pool).
 */
static size_t
sort_pool(const UpgProduct *p, size_t n, bool by_group, uint32_t *order, size_t *pos)
{
	size_t		m = 0,
				i;

	for (i = 0; i < n; i++)
	{
		pos[i] = SIZE_MAX;
		if ((by_group ? p[i].group : p[i].category) >= 0)
			order[m++] = (uint32_t) i;
	}
	pool_sort_ctx.products = p;
	pool_sort_ctx.by_group = by_group;
	qsort(order, m, sizeof(uint32_t), cmp_pool);
	for (i = 0; i < m; i++)
		pos[order[i]] = i;
	return m;
}

typedef struct Work
{
	const UpgProduct *p;
	const UpgParams *params;
	int64_t    *buyers;
	int64_t    *group_buyers;
	int64_t    *cat_buyers;
	uint64_t   *pair_keys;		/* (a << 32 | b), sorted, distinct */
	int64_t    *pair_counts;
	size_t		npairs;
	size_t		pairs_from;		/* the pairs of the product at hand */
	size_t		pairs_to;
	uint32_t   *stamp;			/* product a + 1 when already a candidate of a */
	UpgCandidate *buf;			/* 2 * per_product: the kept candidates */
	size_t		nup;
	size_t		ndown;
} Work;

static bool
pools_match(const UpgProduct *a, const UpgProduct *b, bool *same_group)
{
	*same_group = a->group >= 0 && a->group == b->group;
	if (a->category >= 0 && a->category == b->category)
		return true;
	/* same group, but never another category */
	return *same_group && (a->category < 0 || b->category < 0);
}

static int64_t
pair_count(const Work *w, uint32_t a, uint32_t b)
{
	uint64_t	key = ((uint64_t) a << 32) | b;
	size_t		lo = w->pairs_from,
				hi = w->pairs_to;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (w->pair_keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->pairs_to && w->pair_keys[lo] == key ? w->pair_counts[lo] : 0;
}

/* Whether x ranks before y (same product and direction). */
static bool
ranks_before(const UpgProduct *p, const UpgCandidate *x, const UpgCandidate *y)
{
	if (x->same_group != y->same_group)
		return x->same_group;
	if (x->score != y->score)
		return x->score > y->score;
	return p[x->candidate].id < p[y->candidate].id;
}

/*
 * Keeps the best per_product candidates of each direction in rank order:
 * w->buf[0 .. per_product) for upgrades, w->buf[per_product ..) for
 * downsells.  A bounded insertion: most candidates lose to the last kept one
 * with a single comparison.
 */
static void
keep(Work *w, const UpgCandidate *c)
{
	size_t		k = (size_t) w->params->per_product;
	UpgCandidate *list = c->upgrade ? w->buf : w->buf + k;
	size_t	   *n = c->upgrade ? &w->nup : &w->ndown;
	size_t		i;

	if (k == 0)
		return;
	if (*n == k && !ranks_before(w->p, c, &list[k - 1]))
		return;
	i = *n < k ? (*n)++ : k - 1;
	while (i > 0 && ranks_before(w->p, c, &list[i - 1]))
	{
		list[i] = list[i - 1];
		i--;
	}
	list[i] = *c;
}

/* Scores b as a candidate of a, if it qualifies and is new. */
static void
consider(Work *w, uint32_t a, uint32_t b)
{
	const UpgProduct *pa = &w->p[a],
			   *pb = &w->p[b];
	UpgCandidate c;
	bool		same_group;
	double		pool;

	if (a == b || w->stamp[b] == a + 1)
		return;
	if (!pools_match(pa, pb, &same_group))
		return;
	if (pb->price > pa->price)
	{
		if (pb->price > pa->price * w->params->max_ratio)
			return;
	}
	else if (pb->price < pa->price)
	{
		if (pb->price * w->params->max_ratio < pa->price)
			return;
	}
	else
		return;
	w->stamp[b] = a + 1;

	c.product = a;
	c.candidate = b;
	c.upgrade = pb->price > pa->price;
	c.same_group = same_group;
	c.paths = pair_count(w, a, b);
	c.path_rate = w->buyers[a] > 0 ? (double) c.paths / (double) w->buyers[a] : 0;
	pool = (double) (same_group ? w->group_buyers[pa->group] : w->cat_buyers[pa->category]);
	c.popularity = pool > 0 ? (double) w->buyers[b] / pool : 0;
	c.closeness = c.upgrade ? pa->price / pb->price : pb->price / pa->price;
	if (c.upgrade)
		c.score = 0.5 * c.path_rate + 0.3 * c.popularity + 0.2 * c.closeness;
	else
		c.score = 0.5 * c.closeness + 0.5 * c.popularity;
	keep(w, &c);
}

/* The price neighbours of a in one pool, `window` each way. */
static void
scan_pool(Work *w, uint32_t a, const uint32_t *order, size_t m, size_t pos, bool by_group)
{
	const UpgProduct *pa = &w->p[a];
	int32_t		pool = by_group ? pa->group : pa->category;
	size_t		i;
	int			taken;

	if (pos == SIZE_MAX)
		return;
	taken = 0;
	for (i = pos + 1; i < m && taken < w->params->window; i++)
	{
		const UpgProduct *pb = &w->p[order[i]];

		if ((by_group ? pb->group : pb->category) != pool ||
			pb->price > pa->price * w->params->max_ratio)
			break;
		if (pb->price > pa->price)
		{
			consider(w, a, order[i]);
			taken++;
		}
	}
	taken = 0;
	for (i = pos; i-- > 0 && taken < w->params->window;)
	{
		const UpgProduct *pb = &w->p[order[i]];

		if ((by_group ? pb->group : pb->category) != pool ||
			pb->price * w->params->max_ratio < pa->price)
			break;
		if (pb->price < pa->price)
		{
			consider(w, a, order[i]);
			taken++;
		}
	}
}

static const char *
compute(const UpgProduct *p, size_t n, UpgLine *lines, size_t nlines,
		const UpgParams *params, UpgResult *out)
{
	IdIndex    *ids;
	size_t		i,
				j,
				nl;
	int32_t		ngroups = 0,
				ncats = 0;
	uint32_t   *pstamp,
			   *gstamp,
			   *cstamp;
	uint32_t   *cust_products;
	int64_t    *first,
			   *last;
	bool	   *timed;
	uint64_t   *events = NULL;
	size_t		nevents = 0,
				capevents = 0;
	uint32_t   *gorder,
			   *corder;
	size_t	   *gpos,
			   *cpos;
	size_t		gm,
				cm;
	Work		w;
	UpgCandidate *result = NULL;
	size_t		nresult = 0,
				capresult = 0;

	memset(out, 0, sizeof(*out));
	if (params->max_ratio <= 1 || !isfinite(params->max_ratio))
		return "max_ratio must be greater than 1";
	if (params->per_product < 0 || params->window < 0 || params->max_customer_products < 0)
		return "per_product, window and max_customer_products must not be negative";
	if (n >= UINT32_MAX)
		return "too many products";
	for (i = 0; i < n; i++)
	{
		if (!(p[i].price > 0) || !isfinite(p[i].price))
			return "every price must be positive";
		if (p[i].group >= ngroups)
			ngroups = p[i].group + 1;
		if (p[i].category >= ncats)
			ncats = p[i].category + 1;
	}

	/* ids -> indexes */
	ids = ups_alloc((n ? n : 1) * sizeof(IdIndex));
	for (i = 0; i < n; i++)
	{
		ids[i].id = p[i].id;
		ids[i].index = (uint32_t) i;
	}
	qsort(ids, n, sizeof(IdIndex), cmp_id_index);
	for (i = 1; i < n; i++)
		if (ids[i].id == ids[i - 1].id)
		{
			ups_free(ids);
			return "duplicate product id";
		}
	nl = 0;
	for (i = 0; i < nlines; i++)
	{
		IdIndex		key = {lines[i].product, 0};
		IdIndex    *hit = n ? bsearch(&key, ids, n, sizeof(IdIndex), cmp_id_index) : NULL;

		if (hit == NULL)
		{
			out->lines_unknown++;
			continue;
		}
		lines[nl] = lines[i];
		lines[nl].product = hit->index;
		nl++;
	}
	ups_free(ids);
	out->lines_used = (int64_t) nl;
	if (nl > 1)
		qsort(lines, nl, sizeof(UpgLine), cmp_line);

	/* one pass over customers: buyers and upgrade paths */
	out->buyers = ups_alloc0((n ? n : 1) * sizeof(int64_t));
	w.group_buyers = ups_alloc0((ngroups ? ngroups : 1) * sizeof(int64_t));
	w.cat_buyers = ups_alloc0((ncats ? ncats : 1) * sizeof(int64_t));
	pstamp = ups_alloc0((n ? n : 1) * sizeof(uint32_t));
	gstamp = ups_alloc0((ngroups ? ngroups : 1) * sizeof(uint32_t));
	cstamp = ups_alloc0((ncats ? ncats : 1) * sizeof(uint32_t));
	cust_products = ups_alloc((n ? n : 1) * sizeof(uint32_t));
	first = ups_alloc((n ? n : 1) * sizeof(int64_t));
	last = ups_alloc((n ? n : 1) * sizeof(int64_t));
	timed = ups_alloc((n ? n : 1) * sizeof(bool));

	{
		uint32_t	run = 0;
		uint32_t   *slot = ups_alloc((n ? n : 1) * sizeof(uint32_t));

		for (i = 0; i < nl; i = j)
		{
			size_t		m = 0,
						x,
						y;

			run++;
			for (j = i; j < nl && lines[j].customer == lines[i].customer; j++)
			{
				uint32_t	prod = (uint32_t) lines[j].product;
				const UpgProduct *pp = &p[prod];
				size_t		s;

				if (pstamp[prod] != run)
				{
					pstamp[prod] = run;
					slot[prod] = (uint32_t) m;
					cust_products[m] = prod;
					timed[m] = false;
					m++;
					out->buyers[prod]++;
					if (pp->group >= 0 && gstamp[pp->group] != run)
					{
						gstamp[pp->group] = run;
						w.group_buyers[pp->group]++;
					}
					if (pp->category >= 0 && cstamp[pp->category] != run)
					{
						cstamp[pp->category] = run;
						w.cat_buyers[pp->category]++;
					}
				}
				s = slot[prod];
				if (lines[j].has_time)
				{
					/* lines come in time order within the customer */
					if (!timed[s])
					{
						timed[s] = true;
						first[s] = lines[j].time;
					}
					last[s] = lines[j].time;
				}
			}
			if (m > (size_t) params->max_customer_products)
			{
				out->big_customers++;
				continue;
			}
			for (x = 0; x < m; x++)
			{
				if (!timed[x])
					continue;
				for (y = 0; y < m; y++)
				{
					bool		same_group;

					if (x == y || !timed[y] || !(first[x] < last[y]))
						continue;
					if (!pools_match(&p[cust_products[x]], &p[cust_products[y]], &same_group))
						continue;
					if (nevents == capevents)
					{
						capevents = capevents ? capevents * 2 : 1024;
						events = grow(events, capevents * sizeof(uint64_t));
					}
					events[nevents++] = ((uint64_t) cust_products[x] << 32) | cust_products[y];
				}
			}
			if ((run & 1023) == 0)
				ups_check_interrupts();
		}
		ups_free(slot);
	}
	ups_free(pstamp);
	ups_free(gstamp);
	ups_free(cstamp);
	ups_free(cust_products);
	ups_free(first);
	ups_free(last);
	ups_free(timed);

	/* path counts: sort the (customer, pair) events and count runs */
	if (nevents > 1)
		qsort(events, nevents, sizeof(uint64_t), cmp_u64);
	w.pair_keys = ups_alloc((nevents ? nevents : 1) * sizeof(uint64_t));
	w.pair_counts = ups_alloc((nevents ? nevents : 1) * sizeof(int64_t));
	w.npairs = 0;
	for (i = 0; i < nevents; i = j)
	{
		for (j = i; j < nevents && events[j] == events[i]; j++)
			;
		w.pair_keys[w.npairs] = events[i];
		w.pair_counts[w.npairs] = (int64_t) (j - i);
		w.npairs++;
	}
	ups_free(events);
	out->path_pairs = (int64_t) w.npairs;

	/* candidates per product */
	gorder = ups_alloc((n ? n : 1) * sizeof(uint32_t));
	corder = ups_alloc((n ? n : 1) * sizeof(uint32_t));
	gpos = ups_alloc((n ? n : 1) * sizeof(size_t));
	cpos = ups_alloc((n ? n : 1) * sizeof(size_t));
	gm = sort_pool(p, n, true, gorder, gpos);
	cm = sort_pool(p, n, false, corder, cpos);

	w.p = p;
	w.params = params;
	w.buyers = out->buyers;
	w.stamp = ups_alloc0((n ? n : 1) * sizeof(uint32_t));
	w.buf = ups_alloc(sizeof(UpgCandidate) * (2 * (size_t) params->per_product + 1));
	w.nup = w.ndown = 0;

	{
		size_t		k = 0;			/* next pair key to look at */

		for (i = 0; i < n; i++)
		{
			uint32_t	a = (uint32_t) i;

			w.nup = w.ndown = 0;
			while (k < w.npairs && (w.pair_keys[k] >> 32) < a)
				k++;
			w.pairs_from = k;
			while (k < w.npairs && (w.pair_keys[k] >> 32) == a)
				k++;
			w.pairs_to = k;
			scan_pool(&w, a, gorder, gm, gpos[i], true);
			scan_pool(&w, a, corder, cm, cpos[i], false);
			/* products this one's buyers moved to, whatever their distance */
			for (k = w.pairs_from; k < w.pairs_to; k++)
				consider(&w, a, (uint32_t) (w.pair_keys[k] & 0xFFFFFFFF));

			if (nresult + w.nup + w.ndown > capresult)
			{
				capresult = (nresult + w.nup + w.ndown) * 2 + 64;
				result = grow(result, capresult * sizeof(UpgCandidate));
			}
			memcpy(result + nresult, w.buf, w.nup * sizeof(UpgCandidate));
			nresult += w.nup;
			memcpy(result + nresult, w.buf + params->per_product, w.ndown * sizeof(UpgCandidate));
			nresult += w.ndown;
			if ((i & 1023) == 0)
				ups_check_interrupts();
		}
	}

	ups_free(w.buf);
	ups_free(w.stamp);
	ups_free(gorder);
	ups_free(corder);
	ups_free(gpos);
	ups_free(cpos);
	ups_free(w.pair_keys);
	ups_free(w.pair_counts);
	ups_free(w.group_buyers);
	ups_free(w.cat_buyers);
	out->cands = result;
	out->ncands = nresult;
	return NULL;
}

/*
 * The work runs on a copy of the catalog sorted by (category, price, id), so
 * that the price neighbours a product scans, and their counters, sit next to
 * each other in memory; the result is mapped back to the caller's indexes.
 */
const char *
upg_compute(const UpgProduct *p, size_t n, UpgLine *lines, size_t nlines,
			const UpgParams *params, UpgResult *out)
{
	uint32_t   *order = ups_alloc((n ? n : 1) * sizeof(uint32_t));
	UpgProduct *q = ups_alloc((n ? n : 1) * sizeof(UpgProduct));
	int64_t    *buyers;
	const char *error;
	size_t		i;

	if (n >= UINT32_MAX)
	{
		ups_free(order);
		ups_free(q);
		memset(out, 0, sizeof(*out));
		return "too many products";
	}
	for (i = 0; i < n; i++)
		order[i] = (uint32_t) i;
	pool_sort_ctx.products = p;
	pool_sort_ctx.by_group = false;
	qsort(order, n, sizeof(uint32_t), cmp_pool);
	for (i = 0; i < n; i++)
		q[i] = p[order[i]];
	error = compute(q, n, lines, nlines, params, out);
	if (error == NULL)
	{
		for (i = 0; i < out->ncands; i++)
		{
			out->cands[i].product = order[out->cands[i].product];
			out->cands[i].candidate = order[out->cands[i].candidate];
		}
		buyers = ups_alloc((n ? n : 1) * sizeof(int64_t));
		for (i = 0; i < n; i++)
			buyers[order[i]] = out->buyers[i];
		ups_free(out->buyers);
		out->buyers = buyers;
	}
	ups_free(order);
	ups_free(q);
	return error;
}

void
upg_result_free(UpgResult *r)
{
	ups_free(r->cands);
	ups_free(r->buyers);
	memset(r, 0, sizeof(*r));
}
