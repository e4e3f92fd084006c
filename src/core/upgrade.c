/*
 * upgrade.c
 *		Upgrade and downsell candidates of a whole catalog in one pass over the
 *		order history (see upgrade.h for the rules and the scores).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "sorting.h"
#include "upgrade.h"
#include "ups_host.h"

/* ups_realloc of NULL is not allowed (the server's repalloc) */
static void *
grow(void *ptr, size_t size)
{
	return ptr ? ups_realloc(ptr, size) : ups_alloc(size);
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

/*
 * Whether b is a candidate of a by price: dearer up to price * max_ratio, or
 * cheaper down to price / max_ratio; never at the same price.  The paths
 * are counted only between products in reach (consider() scores no other),
 * so both ask here, with the same comparisons.
 */
static inline bool
in_reach(const UpgProduct *a, const UpgProduct *b, double max_ratio)
{
	if (b->price > a->price)
		return !(b->price > a->price * max_ratio);
	if (b->price < a->price)
		return !(b->price * max_ratio < a->price);
	return false;
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
	if (!pools_match(pa, pb, &same_group) || !in_reach(pa, pb, w->params->max_ratio))
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

/* A held line; product is the product's index | HELD_TIMED when timed. */
typedef struct HeldLine
{
	int64_t		time;
	uint32_t	customer;		/* the customer's dense index (HELD_GUEST: a
								 * guest order's, in the guests' own) */
	uint32_t	product;
} HeldLine;

#define HELD_TIMED	UINT32_C(0x80000000)
#define HELD_GUEST	UINT32_C(0x80000000)
#define HELD_BLOCK	((size_t) 1 << 12)

/*
 * The stream's state.  The work runs on a copy of the catalog sorted by
 * (category, price, id), so that the price neighbours a product scans, and
 * their counters, sit next to each other in memory; the result is mapped
 * back to the caller's indexes.
 */
struct UpgStream
{
	UpgParams	params;
	size_t		n;
	uint32_t   *order;			/* sorted index -> caller's index */
	UpgProduct *p;				/* the sorted copy */
	UpsIdMap	ids;			/* product id -> index into p */
	int32_t		ngroups;
	int32_t		ncats;
	int64_t    *buyers;
	int64_t    *group_buyers;
	int64_t    *cat_buyers;
	uint32_t	run;			/* customers seen */
	uint32_t   *pstamp;
	uint32_t   *gstamp;
	uint32_t   *cstamp;
	uint32_t   *slot;
	uint32_t   *cust_products;	/* the customer's products, by slot */
	uint32_t   *timed_products;	/* those with a time, sorted */
	int64_t    *first;
	int64_t    *last;
	bool	   *timed;
	uint64_t   *events;			/* (a << 32 | b) per customer with a path */
	size_t		nevents;
	size_t		capevents;
	int64_t		lines_used;
	int64_t		lines_unknown;
	int64_t		big_customers;
	/*
	 * Lines held by upg_stream_hold until upg_stream_group feeds them, in
	 * blocks of HELD_BLOCK lines that never move: arrays grown by doubling
	 * were copied at every step, a tenth of the build at 10M lines.
	 */
	UpsIdMap	held_customers;	/* customer id -> dense index */
	UpsIdMap	held_guests;	/* a guest order's key -> dense index */
	HeldLine  **held;			/* the blocks */
	size_t		nblocks;
	size_t		capblocks;
	size_t		nheld;
	int64_t		held_unknown;	/* lines of products not given */
	/* the last line's customer: an order's lines come together */
	int64_t		last_customer;
	bool		last_guest;
	uint32_t	last_customer_index;
};

/* The held line at a position. */
static inline HeldLine *
held_line(const UpgStream *s, size_t i)
{
	return &s->held[i / HELD_BLOCK][i % HELD_BLOCK];
}

static void *
alloc_n(size_t n, size_t size, bool zero)
{
	return zero ? ups_alloc0((n ? n : 1) * size) : ups_alloc((n ? n : 1) * size);
}

const char *
upg_stream_begin(const UpgProduct *products, size_t n, const UpgParams *params, UpgStream **out)
{
	UpgStream  *s;
	size_t		i;

	*out = NULL;
	if (params->max_ratio <= 1 || !isfinite(params->max_ratio))
		return "max_ratio must be greater than 1";
	if (params->per_product < 0 || params->window < 0 || params->max_customer_products < 0)
		return "per_product, window and max_customer_products must not be negative";
	if (n >= HELD_TIMED)
		return "too many products";
	for (i = 0; i < n; i++)
		if (!(products[i].price > 0) || !isfinite(products[i].price))
			return "every price must be positive";

	s = ups_alloc0(sizeof(UpgStream));
	s->params = *params;
	s->n = n;
	s->order = alloc_n(n, sizeof(uint32_t), false);
	for (i = 0; i < n; i++)
		s->order[i] = (uint32_t) i;
	pool_sort_ctx.products = products;
	pool_sort_ctx.by_group = false;
	qsort(s->order, n, sizeof(uint32_t), cmp_pool);
	s->p = alloc_n(n, sizeof(UpgProduct), false);
	for (i = 0; i < n; i++)
	{
		s->p[i] = products[s->order[i]];
		if (s->p[i].group >= s->ngroups)
			s->ngroups = s->p[i].group + 1;
		if (s->p[i].category >= s->ncats)
			s->ncats = s->p[i].category + 1;
	}

	/* ids -> indexes */
	ups_idmap_init(&s->ids, n);
	for (i = 0; i < n; i++)
		if (!ups_idmap_add(&s->ids, s->p[i].id, (uint32_t) i))
		{
			upg_stream_free(s);
			return "duplicate product id";
		}
	/* (every line's product is looked up: upg_stream_hold) */
	ups_idmap_index_directly(&s->ids);

	s->buyers = alloc_n(n, sizeof(int64_t), true);
	s->group_buyers = alloc_n((size_t) s->ngroups, sizeof(int64_t), true);
	s->cat_buyers = alloc_n((size_t) s->ncats, sizeof(int64_t), true);
	s->pstamp = alloc_n(n, sizeof(uint32_t), true);
	s->gstamp = alloc_n((size_t) s->ngroups, sizeof(uint32_t), true);
	s->cstamp = alloc_n((size_t) s->ncats, sizeof(uint32_t), true);
	s->slot = alloc_n(n, sizeof(uint32_t), false);
	s->cust_products = alloc_n(n, sizeof(uint32_t), false);
	s->timed_products = alloc_n(n, sizeof(uint32_t), false);
	s->first = alloc_n(n, sizeof(int64_t), false);
	s->last = alloc_n(n, sizeof(int64_t), false);
	s->timed = alloc_n(n, sizeof(bool), false);
	*out = s;
	return NULL;
}

/* One customer's path a -> b, if a's first purchase precedes b's last. */
static inline void
add_path(UpgStream *s, uint32_t a, uint32_t b)
{
	if (!(s->first[s->slot[a]] < s->last[s->slot[b]]))
		return;
	if (s->nevents == s->capevents)
	{
		s->capevents = s->capevents ? s->capevents * 2 : 1024;
		s->events = grow(s->events, s->capevents * sizeof(uint64_t));
	}
	s->events[s->nevents++] = ((uint64_t) a << 32) | b;
}

/*
 * One customer's held lines (their positions among the held lines): what
 * they bought (first and last time per product: the earliest and latest of
 * its timed lines, in any order) and the paths between them.
 */
/*
 * How many positions ahead customer_lines() asks for a held line: the
 * positions jump across the 160 MB of held lines (at 10M lines), one cache
 * miss each, which the loop would otherwise wait for one after the other.
 */
#define LINE_PREFETCH	16

static void
customer_lines(UpgStream *s, const uint32_t *lines, size_t nl, size_t ahead)
{
	const UpgProduct *p = s->p;
	size_t		m = 0,
				nt,
				i,
				j,
				x,
				y;

	if (nl == 0)
		return;
	s->lines_used += (int64_t) nl;
	s->run++;
	for (i = 0; i < nl; i++)
	{
		const HeldLine *line = held_line(s, lines[i]);
		uint32_t	held = line->product;
		uint32_t	prod = held & ~HELD_TIMED;
		int64_t		time = line->time;
		const UpgProduct *pp = &p[prod];
		size_t		k;

#if defined(__GNUC__) || defined(__clang__)
		/* (the positions run on into the next customers': ahead of them) */
		if (i + LINE_PREFETCH < ahead)
			__builtin_prefetch(held_line(s, lines[i + LINE_PREFETCH]));
#endif

		if (s->pstamp[prod] != s->run)
		{
			s->pstamp[prod] = s->run;
			s->slot[prod] = (uint32_t) m;
			s->cust_products[m] = prod;
			s->timed[m] = false;
			m++;
			s->buyers[prod]++;
			if (pp->group >= 0 && s->gstamp[pp->group] != s->run)
			{
				s->gstamp[pp->group] = s->run;
				s->group_buyers[pp->group]++;
			}
			if (pp->category >= 0 && s->cstamp[pp->category] != s->run)
			{
				s->cstamp[pp->category] = s->run;
				s->cat_buyers[pp->category]++;
			}
		}
		k = s->slot[prod];
		if (held & HELD_TIMED)
		{
			if (!s->timed[k])
			{
				s->timed[k] = true;
				s->first[k] = s->last[k] = time;
			}
			else if (time < s->first[k])
				s->first[k] = time;
			else if (time > s->last[k])
				s->last[k] = time;
		}
	}
	if (m > (size_t) s->params.max_customer_products)
	{
		s->big_customers++;
		return;
	}

	/*
	 * The paths: every ordered pair of the customer's timed products that
	 * pools_match() accepts and in_reach() keeps, bought first, then later.
	 * They are taken pool by pool rather than by testing all m * m pairs: a
	 * customer of a few hundred products spread over many categories has
	 * few pairs in any one of them.  pools_match() accepts a pair of the same
	 * category, or of the same variant group when one of the two has no
	 * category.  Sorted, the customer's product indexes come in runs of one
	 * category (the catalog copy is sorted by category, then price), those
	 * without a category first: the first kind of pair is within a run, the
	 * second pairs a product of that first run with every product of its
	 * group.  Within a run the products in reach of one are a window of
	 * neighbours by price, which moves up the run with it: at 10M lines of
	 * the bench's shop, 1.7M path events of 21M pairs in the same pools.
	 */
	nt = 0;
	for (x = 0; x < m; x++)
		if (s->timed[x])
			s->timed_products[nt++] = s->cust_products[x];
	if (nt < 2)
		return;
	ups_sort_uint32(s->timed_products, nt);
	for (x = 0; x < nt; x = y)
	{
		int32_t		category = p[s->timed_products[x]].category;

		for (y = x + 1; y < nt && p[s->timed_products[y]].category == category; y++)
			;
		if (category >= 0)
		{
			size_t		lo = x,
						hi = x;

			for (i = x; i < y; i++)
			{
				const UpgProduct *pi = &p[s->timed_products[i]];

				/* [lo, hi): not cheaper than price / ratio, not dearer than price * ratio */
				while (p[s->timed_products[lo]].price * s->params.max_ratio < pi->price)
					lo++;
				while (hi < y && !(p[s->timed_products[hi]].price > pi->price * s->params.max_ratio))
					hi++;
				for (j = lo; j < hi; j++)
					if (p[s->timed_products[j]].price != pi->price)
						add_path(s, s->timed_products[i], s->timed_products[j]);
			}
		}
		else
		{
			for (i = x; i < y; i++)
			{
				uint32_t	u = s->timed_products[i];

				if (p[u].group < 0)
					continue;
				for (j = 0; j < nt; j++)
				{
					uint32_t	v = s->timed_products[j];

					if (v == u || p[v].group != p[u].group)
						continue;
					if (in_reach(&p[u], &p[v], s->params.max_ratio))
						add_path(s, u, v);
					/* (a product without a category adds its own) */
					if (p[v].category >= 0 && in_reach(&p[v], &p[u], s->params.max_ratio))
						add_path(s, v, u);
				}
			}
		}
	}
	if ((s->run & 1023) == 0)
		ups_check_interrupts();
}

size_t
upg_stream_hold(UpgStream *s, int64_t customer, bool guest, int64_t product, bool has_time, int64_t time)
{
	int64_t		index = ups_idmap_find(&s->ids, product);

	if (index < 0)
		s->held_unknown++;
	else
	{
		HeldLine   *line;

		if (s->nheld == s->nblocks * HELD_BLOCK)
		{
			if (s->nblocks == s->capblocks)
			{
				s->capblocks = s->capblocks ? 2 * s->capblocks : 16;
				s->held = grow(s->held, s->capblocks * sizeof(HeldLine *));
			}
			s->held[s->nblocks++] = ups_alloc(HELD_BLOCK * sizeof(HeldLine));
		}
		line = held_line(s, s->nheld);
		if (s->nheld == 0 || customer != s->last_customer || guest != s->last_guest)
		{
			UpsIdMap   *map = guest ? &s->held_guests : &s->held_customers;

			/* (once per run of a customer's lines, not per line) */
			if (map->slots == NULL)
				ups_idmap_init(map, 1024);
			s->last_customer = customer;
			s->last_guest = guest;
			s->last_customer_index = ups_idmap_intern(map, customer) | (guest ? HELD_GUEST : 0);
		}
		line->customer = s->last_customer_index;
		line->product = (uint32_t) index | (has_time ? HELD_TIMED : 0);
		line->time = has_time ? time : 0;
		s->nheld++;
	}
	return s->nblocks * HELD_BLOCK * sizeof(HeldLine)
		+ (s->held_customers.slots ? (s->held_customers.mask + 1) * sizeof(UpsIdSlot) : 0)
		+ (s->held_guests.slots ? (s->held_guests.mask + 1) * sizeof(UpsIdSlot) : 0);
}

void
upg_stream_drop_held(UpgStream *s)
{
	/* (zeroed: a pass without guests, say, must find that map empty) */
	if (s->held_customers.slots)
		ups_idmap_free(&s->held_customers);
	if (s->held_guests.slots)
		ups_idmap_free(&s->held_guests);
	memset(&s->held_customers, 0, sizeof(s->held_customers));
	memset(&s->held_guests, 0, sizeof(s->held_guests));
	for (size_t b = 0; b < s->nblocks; b++)
		ups_free(s->held[b]);
	if (s->held)
		ups_free(s->held);
	s->held = NULL;
	s->nblocks = s->capblocks = 0;
	s->nheld = 0;
	s->held_unknown = 0;
}

/* A held line's customer among all: the customers, then the guests' orders. */
static inline size_t
held_customer(const UpgStream *s, size_t i)
{
	uint32_t	c = held_line(s, i)->customer;

	return (c & HELD_GUEST) ? s->held_customers.count + (c & ~HELD_GUEST) : c;
}

void
upg_stream_group(UpgStream *s)
{
	size_t		ncust = s->held_customers.count + s->held_guests.count,
				i,
				c;
	size_t	   *start;
	uint32_t   *order;

	s->lines_unknown += s->held_unknown;
	if (s->nheld == 0)
	{
		upg_stream_drop_held(s);
		return;
	}

	/* the lines' positions by customer (a counting sort), then each customer fed */
	start = alloc_n(ncust + 1, sizeof(size_t), true);
	order = alloc_n(s->nheld, sizeof(uint32_t), false);
	for (i = 0; i < s->nheld; i++)
		start[held_customer(s, i) + 1]++;
	for (c = 0; c < ncust; c++)
		start[c + 1] += start[c];
	for (i = 0; i < s->nheld; i++)
		order[start[held_customer(s, i)]++] = (uint32_t) i;
	/* start[c] is now where customer c's positions end */
	for (c = 0; c < ncust; c++)
	{
		size_t		from = c == 0 ? 0 : start[c - 1];

		customer_lines(s, order + from, start[c] - from, s->nheld - from);
	}
	ups_free(order);
	ups_free(start);
	s->held_unknown = 0;
	upg_stream_drop_held(s);
}

void
upg_stream_finish(UpgStream *s, UpgResult *out)
{
	const UpgProduct *p = s->p;
	size_t		n = s->n;
	size_t		i,
				j;
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

	upg_stream_group(s);
	memset(out, 0, sizeof(*out));
	out->lines_used = s->lines_used;
	out->lines_unknown = s->lines_unknown;
	out->big_customers = s->big_customers;
	w.group_buyers = s->group_buyers;
	w.cat_buyers = s->cat_buyers;

	/* path counts: sort the (customer, pair) events and count runs */
	ups_sort_uint64(s->events, s->nevents);
	w.pair_keys = alloc_n(s->nevents, sizeof(uint64_t), false);
	w.pair_counts = alloc_n(s->nevents, sizeof(int64_t), false);
	w.npairs = 0;
	for (i = 0; i < s->nevents; i = j)
	{
		for (j = i; j < s->nevents && s->events[j] == s->events[i]; j++)
			;
		w.pair_keys[w.npairs] = s->events[i];
		w.pair_counts[w.npairs] = (int64_t) (j - i);
		w.npairs++;
	}
	out->path_pairs = (int64_t) w.npairs;

	/* candidates per product */
	gorder = alloc_n(n, sizeof(uint32_t), false);
	corder = alloc_n(n, sizeof(uint32_t), false);
	gpos = alloc_n(n, sizeof(size_t), false);
	cpos = alloc_n(n, sizeof(size_t), false);
	gm = sort_pool(p, n, true, gorder, gpos);
	cm = sort_pool(p, n, false, corder, cpos);

	w.p = p;
	w.params = &s->params;
	w.buyers = s->buyers;
	w.stamp = alloc_n(n, sizeof(uint32_t), true);
	w.buf = ups_alloc(sizeof(UpgCandidate) * (2 * (size_t) s->params.per_product + 1));
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
			if (w.nup + w.ndown > 0)
			{
				memcpy(result + nresult, w.buf, w.nup * sizeof(UpgCandidate));
				nresult += w.nup;
				memcpy(result + nresult, w.buf + s->params.per_product, w.ndown * sizeof(UpgCandidate));
				nresult += w.ndown;
			}
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

	/* back to the caller's indexes */
	for (i = 0; i < nresult; i++)
	{
		result[i].product = s->order[result[i].product];
		result[i].candidate = s->order[result[i].candidate];
	}
	out->cands = result;
	out->ncands = nresult;
	out->buyers = alloc_n(n, sizeof(int64_t), false);
	for (i = 0; i < n; i++)
		out->buyers[s->order[i]] = s->buyers[i];
	upg_stream_free(s);
}

void
upg_stream_free(UpgStream *s)
{
	void	   *arrays[] = {s->order, s->p, s->buyers, s->group_buyers, s->cat_buyers,
		s->pstamp, s->gstamp, s->cstamp, s->slot, s->cust_products, s->timed_products, s->first, s->last,
	s->timed, s->events};

	upg_stream_drop_held(s);
	if (s->ids.slots)
		ups_idmap_free(&s->ids);

	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		if (arrays[i])
			ups_free(arrays[i]);
	ups_free(s);
}

const char *
upg_compute(const UpgProduct *p, size_t n, const UpgLine *lines, size_t nlines,
			const UpgParams *params, UpgResult *out)
{
	UpgStream  *s;
	const char *error;
	size_t		i;

	memset(out, 0, sizeof(*out));
	error = upg_stream_begin(p, n, params, &s);
	if (error)
		return error;
	for (i = 0; i < nlines; i++)
		upg_stream_hold(s, lines[i].customer, lines[i].guest, lines[i].product, lines[i].has_time,
						lines[i].time);
	upg_stream_finish(s, out);
	return NULL;
}

void
upg_result_free(UpgResult *r)
{
	ups_free(r->cands);
	ups_free(r->buyers);
	memset(r, 0, sizeof(*r));
}
