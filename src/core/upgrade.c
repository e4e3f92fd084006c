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
	/* sign -1: the customers fed are taken out of the counts */
	int			sign;
	uint64_t   *removed;		/* their paths, as events */
	size_t		nremoved;
	size_t		capremoved;
	uint64_t	catalog_hash;
	int64_t		untimed_customer_lines;
	/* the counts loaded (upg_stream_load): the paths events add to */
	uint64_t   *base_keys;
	int64_t    *base_counts;
	size_t		nbase;
	size_t		base_pairs;		/* the pairs the loaded counts have */
	size_t		chunks_loaded;
	size_t		chunks_expected;	/* 0: nothing loaded */
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
	int64_t		held_untimed;	/* customers' (not guests') lines without a
								 * time */
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

/*
 * What the counts depend on: the sorted catalog, and the parameters that
 * decide which pairs are counted (max_ratio) and which customers
 * (max_customer_products).  FNV-1a over 64-bit words, then the core's
 * finalizer.
 */
static uint64_t
hash_word(uint64_t h, uint64_t word)
{
	return (h ^ word) * UINT64_C(0x100000001b3);
}

static uint64_t
hash_double(uint64_t h, double d)
{
	uint64_t	bits;

	memcpy(&bits, &d, sizeof bits);
	return hash_word(h, bits);
}

static uint64_t
catalog_hash(const UpgProduct *p, size_t n, const UpgParams *params)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325);

	h = hash_word(h, (uint64_t) n);
	h = hash_double(h, params->max_ratio);
	h = hash_word(h, (uint64_t) (int64_t) params->max_customer_products);
	for (size_t i = 0; i < n; i++)
	{
		h = hash_word(h, (uint64_t) p[i].id);
		h = hash_word(h, ((uint64_t) (uint32_t) p[i].group << 32) | (uint32_t) p[i].category);
		h = hash_double(h, p[i].price);
	}
	return ups_mix64(h);
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

	s->sign = 1;
	s->catalog_hash = catalog_hash(s->p, n, params);

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
	if (s->sign < 0)
	{
		if (s->nremoved == s->capremoved)
		{
			s->capremoved = s->capremoved ? s->capremoved * 2 : 1024;
			s->removed = grow(s->removed, s->capremoved * sizeof(uint64_t));
		}
		s->removed[s->nremoved++] = ((uint64_t) a << 32) | b;
		return;
	}
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
			s->buyers[prod] += s->sign;
			if (pp->group >= 0 && s->gstamp[pp->group] != s->run)
			{
				s->gstamp[pp->group] = s->run;
				s->group_buyers[pp->group] += s->sign;
			}
			if (pp->category >= 0 && s->cstamp[pp->category] != s->run)
			{
				s->cstamp[pp->category] = s->run;
				s->cat_buyers[pp->category] += s->sign;
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
		s->big_customers += s->sign;
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
		if (!has_time && !guest)
			s->held_untimed++;
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
	s->held_untimed = 0;
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
	s->untimed_customer_lines += s->held_untimed;
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
	s->held_untimed = 0;
	upg_stream_drop_held(s);
}

/* The length of the run of equal keys at keys[i]. */
static size_t
key_run(const uint64_t *keys, size_t n, size_t i)
{
	size_t		j = i;

	while (j < n && keys[j] == keys[i])
		j++;
	return j - i;
}

/*
 * The path counts: the loaded pairs (sorted), plus the runs of the sorted
 * events, minus those of the sorted removed events, in one merge; a pair
 * whose count comes to 0 goes, one below 0 is inconsistent (and goes).
 */
static size_t
merge_paths(UpgStream *s, uint64_t **keys_out, int64_t **counts_out, bool *inconsistent)
{
	size_t		most = s->nbase + s->nevents,
				b = 0,
				e = 0,
				r = 0,
				n = 0;
	uint64_t   *keys = alloc_n(most, sizeof(uint64_t), false);
	int64_t    *counts = alloc_n(most, sizeof(int64_t), false);

	while (b < s->nbase || e < s->nevents || r < s->nremoved)
	{
		uint64_t	key = UINT64_MAX;
		int64_t		count = 0;
		size_t		run;

		if (b < s->nbase && s->base_keys[b] < key)
			key = s->base_keys[b];
		if (e < s->nevents && s->events[e] < key)
			key = s->events[e];
		if (r < s->nremoved && s->removed[r] < key)
			key = s->removed[r];
		if (b < s->nbase && s->base_keys[b] == key)
			count += s->base_counts[b++];
		if (e < s->nevents && s->events[e] == key)
		{
			run = key_run(s->events, s->nevents, e);
			count += (int64_t) run;
			e += run;
		}
		if (r < s->nremoved && s->removed[r] == key)
		{
			run = key_run(s->removed, s->nremoved, r);
			count -= (int64_t) run;
			r += run;
		}
		if (count < 0)
			*inconsistent = true;
		if (count > 0)
		{
			keys[n] = key;
			counts[n] = count;
			n++;
		}
	}
	*keys_out = keys;
	*counts_out = counts;
	return n;
}

void
upg_stream_finish(UpgStream *s, UpgResult *out)
{
	const UpgProduct *p = s->p;
	size_t		n = s->n;
	size_t		i;
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
	w.group_buyers = s->group_buyers;
	w.cat_buyers = s->cat_buyers;

	/*
	 * path counts: the loaded ones (none when every line was read), plus the
	 * runs of the sorted events, minus those of the paths taken out
	 */
	ups_sort_uint64(s->events, s->nevents);
	ups_sort_uint64(s->removed, s->nremoved);
	w.npairs = merge_paths(s, &w.pair_keys, &w.pair_counts, &out->inconsistent);
	for (i = 0; i < n; i++)
		if (s->buyers[i] < 0)
			out->inconsistent = true;
	for (int32_t g = 0; g < s->ngroups; g++)
		if (s->group_buyers[g] < 0)
			out->inconsistent = true;
	for (int32_t c = 0; c < s->ncats; c++)
		if (s->cat_buyers[c] < 0)
			out->inconsistent = true;
	if (s->big_customers < 0)
		out->inconsistent = true;

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

	/* the counts, handed over to the result */
	out->counts.catalog_hash = s->catalog_hash;
	out->counts.n = n;
	out->counts.ngroups = s->ngroups;
	out->counts.ncats = s->ncats;
	out->counts.buyers = s->buyers;
	out->counts.group_buyers = s->group_buyers;
	out->counts.cat_buyers = s->cat_buyers;
	out->counts.pair_keys = w.pair_keys;
	out->counts.pair_counts = w.pair_counts;
	out->counts.npairs = w.npairs;
	out->counts.big_customers = s->big_customers;
	out->counts.untimed_customer_lines = s->untimed_customer_lines;
	s->buyers = s->group_buyers = s->cat_buyers = NULL;
	upg_stream_free(s);
}

void
upg_stream_free(UpgStream *s)
{
	void	   *arrays[] = {s->order, s->p, s->buyers, s->group_buyers, s->cat_buyers,
		s->pstamp, s->gstamp, s->cstamp, s->slot, s->cust_products, s->timed_products, s->first, s->last,
	s->timed, s->events, s->removed, s->base_keys, s->base_counts};

	upg_stream_drop_held(s);
	if (s->ids.slots)
		ups_idmap_free(&s->ids);

	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		if (arrays[i])
			ups_free(arrays[i]);
	ups_free(s);
}

/*
 * The counts in chunks of bytes: chunk 0 the header and the per product,
 * group and category buyers, then the path pairs, at most max_pairs a chunk
 * (a chunk is one stored value, which PostgreSQL bounds at 1 GB).  In the
 * machine's byte order: a reader of another order finds the magic number
 * wrong, and counts every line again.
 */
#define COUNTS_MAGIC	UINT32_C(0x43475055)
#define COUNTS_VERSION	UINT32_C(1)

typedef struct CountsHeader
{
	uint32_t	magic;
	uint32_t	version;
	uint64_t	catalog_hash;
	uint64_t	n;
	int32_t		ngroups;
	int32_t		ncats;
	int64_t		big_customers;
	int64_t		untimed_customer_lines;
	uint64_t	npairs;
	uint64_t	nchunks;
} CountsHeader;

typedef struct PairsHeader
{
	uint32_t	magic;
	uint32_t	chunk;
	uint64_t	npairs;
} PairsHeader;

size_t
upg_counts_nchunks(const UpgCounts *c, size_t max_pairs)
{
	if (max_pairs == 0)
		max_pairs = 1;
	return 1 + (c->npairs + max_pairs - 1) / max_pairs;
}

/* The pairs chunk (>= 1) holds: its first and how many. */
static size_t
chunk_pairs(const UpgCounts *c, size_t max_pairs, size_t chunk, size_t *from)
{
	*from = (chunk - 1) * max_pairs;
	if (*from >= c->npairs)
		return 0;
	return c->npairs - *from < max_pairs ? c->npairs - *from : max_pairs;
}

size_t
upg_counts_chunk_size(const UpgCounts *c, size_t max_pairs, size_t chunk)
{
	size_t		from;

	if (max_pairs == 0)
		max_pairs = 1;
	if (chunk == 0)
		return sizeof(CountsHeader) + sizeof(int64_t) * (c->n + (size_t) c->ngroups + (size_t) c->ncats);
	return sizeof(PairsHeader) + (sizeof(uint64_t) + sizeof(int64_t)) * chunk_pairs(c, max_pairs, chunk, &from);
}

/* Writes chunk into out, of upg_counts_chunk_size bytes (a value's data). */
void
upg_counts_write_chunk(const UpgCounts *c, size_t max_pairs, size_t chunk, void *out)
{
	char	   *buf = out;

	if (max_pairs == 0)
		max_pairs = 1;
	if (chunk == 0)
	{
		CountsHeader h;
		size_t		at = sizeof h;

		memset(&h, 0, sizeof h);
		h.magic = COUNTS_MAGIC;
		h.version = COUNTS_VERSION;
		h.catalog_hash = c->catalog_hash;
		h.n = c->n;
		h.ngroups = c->ngroups;
		h.ncats = c->ncats;
		h.big_customers = c->big_customers;
		h.untimed_customer_lines = c->untimed_customer_lines;
		h.npairs = c->npairs;
		h.nchunks = upg_counts_nchunks(c, max_pairs);
		memcpy(buf, &h, sizeof h);
		memcpy(buf + at, c->buyers, sizeof(int64_t) * c->n);
		at += sizeof(int64_t) * c->n;
		memcpy(buf + at, c->group_buyers, sizeof(int64_t) * (size_t) c->ngroups);
		at += sizeof(int64_t) * (size_t) c->ngroups;
		memcpy(buf + at, c->cat_buyers, sizeof(int64_t) * (size_t) c->ncats);
	}
	else
	{
		PairsHeader h;
		size_t		from;
		size_t		count = chunk_pairs(c, max_pairs, chunk, &from);

		memset(&h, 0, sizeof h);
		h.magic = COUNTS_MAGIC;
		h.chunk = (uint32_t) chunk;
		h.npairs = count;
		memcpy(buf, &h, sizeof h);
		memcpy(buf + sizeof h, c->pair_keys + from, sizeof(uint64_t) * count);
		memcpy(buf + sizeof h + sizeof(uint64_t) * count, c->pair_counts + from, sizeof(int64_t) * count);
	}
}

UpgLoad
upg_stream_load(UpgStream *s, size_t chunk, const void *data, size_t len)
{
	const char *buf = data;

	if (chunk != s->chunks_loaded || s->nheld > 0 || s->lines_used > 0)
		return UPG_LOAD_CORRUPT;
	if (chunk == 0)
	{
		CountsHeader h;
		size_t		at = sizeof h;

		if (len < sizeof h)
			return UPG_LOAD_CORRUPT;
		memcpy(&h, buf, sizeof h);
		if (h.magic != COUNTS_MAGIC || h.version != COUNTS_VERSION)
			return UPG_LOAD_STALE;
		if (h.catalog_hash != s->catalog_hash || h.n != s->n || h.ngroups != s->ngroups ||
			h.ncats != s->ncats)
			return UPG_LOAD_STALE;
		if (len != sizeof h + sizeof(int64_t) * (s->n + (size_t) s->ngroups + (size_t) s->ncats) ||
			h.nchunks < 1 || h.nchunks - 1 > h.npairs || h.big_customers < 0)
			return UPG_LOAD_CORRUPT;
		/* customers' lines without a time are counted, but not in a history */
		if (h.untimed_customer_lines != 0)
			return UPG_LOAD_STALE;
		memcpy(s->buyers, buf + at, sizeof(int64_t) * s->n);
		at += sizeof(int64_t) * s->n;
		memcpy(s->group_buyers, buf + at, sizeof(int64_t) * (size_t) s->ngroups);
		at += sizeof(int64_t) * (size_t) s->ngroups;
		memcpy(s->cat_buyers, buf + at, sizeof(int64_t) * (size_t) s->ncats);
		s->big_customers = h.big_customers;
		s->base_pairs = (size_t) h.npairs;
		s->chunks_expected = (size_t) h.nchunks;
		s->base_keys = alloc_n(s->base_pairs, sizeof(uint64_t), false);
		s->base_counts = alloc_n(s->base_pairs, sizeof(int64_t), false);
	}
	else
	{
		PairsHeader h;

		if (s->chunks_expected == 0 || chunk >= s->chunks_expected || len < sizeof h)
			return UPG_LOAD_CORRUPT;
		memcpy(&h, buf, sizeof h);
		if (h.magic != COUNTS_MAGIC || h.chunk != chunk || h.npairs > s->base_pairs - s->nbase ||
			len != sizeof h + (sizeof(uint64_t) + sizeof(int64_t)) * (size_t) h.npairs)
			return UPG_LOAD_CORRUPT;
		memcpy(s->base_keys + s->nbase, buf + sizeof h, sizeof(uint64_t) * (size_t) h.npairs);
		memcpy(s->base_counts + s->nbase, buf + sizeof h + sizeof(uint64_t) * (size_t) h.npairs,
			   sizeof(int64_t) * (size_t) h.npairs);
		/* sorted, distinct, of products of the catalog, counted */
		for (size_t i = s->nbase; i < s->nbase + (size_t) h.npairs; i++)
			if ((i > 0 && s->base_keys[i] <= s->base_keys[i - 1]) ||
				(s->base_keys[i] >> 32) >= s->n || (s->base_keys[i] & 0xFFFFFFFF) >= s->n ||
				s->base_counts[i] <= 0)
				return UPG_LOAD_CORRUPT;
		s->nbase += (size_t) h.npairs;
	}
	s->chunks_loaded++;
	return UPG_LOAD_OK;
}

bool
upg_stream_loaded(const UpgStream *s)
{
	return s->chunks_expected > 0 && s->chunks_loaded == s->chunks_expected && s->nbase == s->base_pairs;
}

void
upg_stream_set_sign(UpgStream *s, int sign)
{
	/* (what is held is fed with the sign it is grouped under) */
	s->sign = sign < 0 ? -1 : 1;
}

int64_t
upg_stream_untimed_customer_lines(const UpgStream *s)
{
	return s->untimed_customer_lines;
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
	void	   *arrays[] = {r->cands, r->buyers, r->counts.buyers, r->counts.group_buyers,
	r->counts.cat_buyers, r->counts.pair_keys, r->counts.pair_counts};

	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		if (arrays[i])
			ups_free(arrays[i]);
	memset(r, 0, sizeof(*r));
}
