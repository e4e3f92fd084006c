/*
 * gen_orders: a synthetic but realistically shaped shop, as COPY text.
 *
 *   gen_orders [options] products      bench.products    (COPY text, tab separated)
 *   gen_orders [options] lines         bench.order_lines (COPY text, tab separated)
 *   gen_orders [options] complements   the planted complements: product, complement,
 *                                      probability (per mille) that an order with the
 *                                      product also contains the complement
 *   gen_orders [options] stats         a few figures on stderr-like stdout
 *
 * Options: -s SEED (default 42), -n LINES (default 1000000), -p PRODUCTS (100000),
 *          -c CATEGORIES (120), -z ZIPF_EXPONENT (0.9), -b MEAN_BASKET (3.0).
 *
 * Every output is a pure function of the options: the catalog, the planted
 * complements and the customers are drawn from their own seeded streams, so
 * "products" and "lines" agree when run separately with the same options.
 *
 * The shape:
 *  - categories of very different sizes, each with a price tier: prices are
 *    lognormal around the category's median, computed and printed as integer
 *    cents (never floating point money);
 *  - variant groups: 40% of catalog draws are groups of 2-5 sizes/tiers of
 *    one product (so ~70% of products have siblings; price rising with the
 *    tier); in consumable categories a
 *    group carries unit_size/unit_name (250 ml, 500 ml, 1000 ml...) with a
 *    lower price per unit for bigger sizes;
 *  - product popularity is Zipf (exponent -z) over a random permutation of ids;
 *  - planted complements: a quarter of the products have 1-3 complements in a
 *    partner category, each added to an order containing the product with a
 *    known probability (15-60%);
 *  - orders have 1 + geometric items (mean -b), a few lines with quantity > 1,
 *    some repeated lines of one product, ~0.5% returns (quantity -1 or 0),
 *    ~10% discounted unit prices;
 *  - customers: popularity skewed (Zipf 0.7); 3% of customers are regulars
 *    rebuying one consumable every 14-90 days (with a couple of days of jitter);
 *  - timestamps over two years (2024-01-01 .. 2025-12-31 UTC); order ids
 *    increase with time.
 *
 * No NULL in order lines.  Products have NULL variant_group/unit_size/unit_name
 * where they do not apply.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- random numbers: xoshiro256** seeded with splitmix64 ----------------- */

typedef struct
{
	uint64_t	s[4];
} Rng;

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
rng_seed(Rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t	x = seed * 0x100000001b3ULL + stream * 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
rng_next(Rng *r)
{
	uint64_t   *s = r->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* uniform in [0, 1) */
static inline double
rng_unif(Rng *r)
{
	return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform integer in [0, n) */
static inline uint64_t
rng_below(Rng *r, uint64_t n)
{
	return (uint64_t) (rng_unif(r) * (double) n);
}

static double
rng_normal(Rng *r)
{
	double		u1 = rng_unif(r),
				u2 = rng_unif(r);

	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* number of failures before the first success, success probability p */
static int
rng_geometric(Rng *r, double p)
{
	double		u = rng_unif(r);

	if (u < 1e-300)
		u = 1e-300;
	return (int) floor(log(u) / log(1.0 - p));
}

static void *
xmalloc(size_t n)
{
	void	   *p = calloc(1, n ? n : 1);

	if (!p)
	{
		fprintf(stderr, "gen_orders: out of memory\n");
		exit(1);
	}
	return p;
}

/* ---- Zipf sampling over n items by inverse CDF ---------------------------- */

typedef struct
{
	int			n;
	double	   *cdf;
} Zipf;

static void
zipf_init(Zipf *z, int n, double s)
{
	double		sum = 0;

	z->n = n;
	z->cdf = xmalloc(sizeof(double) * n);
	for (int i = 0; i < n; i++)
	{
		sum += 1.0 / pow(i + 1, s);
		z->cdf[i] = sum;
	}
	for (int i = 0; i < n; i++)
		z->cdf[i] /= sum;
}

/* rank in [0, n): 0 is the most popular */
static int
zipf_draw(const Zipf *z, Rng *r)
{
	double		u = rng_unif(r);
	int			lo = 0,
				hi = z->n - 1;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (z->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
shuffle(int *a, int n, Rng *r)
{
	for (int i = n - 1; i > 0; i--)
	{
		int			j = (int) rng_below(r, (uint64_t) i + 1);
		int			t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

/* ---- options ----------------------------------------------------------------- */

static uint64_t opt_seed = 42;
static long opt_lines = 1000000;
static int	opt_products = 100000;
static int	opt_categories = 120;
static double opt_zipf = 0.9;
static double opt_basket = 3.0;

/* ---- the catalog ------------------------------------------------------------- */

static const char *const unit_names[] = {"ml", "g", "count"};

typedef struct
{
	int			category;		/* 0-based */
	int			group;			/* first product index of its variant group, or -1 */
	int			tier;			/* position in the group */
	int64_t		cents;
	int			in_stock;
	int			unit_size;		/* 0 = none */
	int			unit_name;		/* index into unit_names */
	int			comp_start;		/* planted complements: comps[comp_start .. +comp_n) */
	int			comp_n;
} Product;

typedef struct
{
	int			median_cents;
	double		sigma;
	int			consumable;		/* sold in sizes with units, rebought */
	int			partner;		/* category where its complements live */
	int			n;				/* products */
	int		   *members;		/* product indexes, most popular first */
} Category;

typedef struct
{
	int			product;
	int			per_mille;
} Comp;

static Product *products;
static Category *categories;
static Comp *comps;
static int	ncomps;
static int *rank_of;			/* product index -> popularity rank */
static int *by_rank;			/* popularity rank -> product index */
static Zipf product_zipf;

static int64_t
lognormal_cents(Rng *r, int median, double sigma)
{
	double		v = median * exp(sigma * rng_normal(r));
	int64_t		c = (int64_t) llround(v);

	/* shop-like endings: .99 above $10, .x9 below */
	if (c >= 1000)
		c = (c / 100) * 100 + 99;
	else
		c = (c / 10) * 10 + 9;
	return c < 49 ? 49 : c;
}

static int
cmp_rank(const void *a, const void *b)
{
	int			x = rank_of[*(const int *) a],
				y = rank_of[*(const int *) b];

	return (x > y) - (x < y);
}

static void
build_catalog(void)
{
	Rng			r;
	int			P = opt_products,
				C = opt_categories;
	Zipf		catz;

	rng_seed(&r, opt_seed, 1);
	products = xmalloc(sizeof(Product) * P);
	categories = xmalloc(sizeof(Category) * C);
	for (int c = 0; c < C; c++)
	{
		Category   *cat = &categories[c];

		/* median between $2 and $400, log-uniform */
		cat->median_cents = (int) exp(log(200.0) + rng_unif(&r) * (log(40000.0) - log(200.0)));
		cat->sigma = 0.25 + 0.5 * rng_unif(&r);
		cat->consumable = rng_unif(&r) < 0.3;
		cat->partner = (int) rng_below(&r, C);
		if (cat->partner == c)
			cat->partner = (c + 1) % C;
	}

	/* category sizes skewed: Zipf(0.8) over categories */
	zipf_init(&catz, C, 0.8);
	for (int i = 0; i < P;)
	{
		int			c = zipf_draw(&catz, &r);
		Category   *cat = &categories[c];
		int			g = rng_unif(&r) < 0.6 ? 1 : 2 + (int) rng_below(&r, 4);
		int64_t		base = lognormal_cents(&r, cat->median_cents, cat->sigma);
		int			units = cat->consumable && g > 1;
		int			unit_name = (int) rng_below(&r, 3);
		int			base_size = unit_name == 2 ? 6 : 250;

		if (i + g > P)
			g = P - i;
		for (int t = 0; t < g; t++)
		{
			Product    *p = &products[i + t];
			int64_t		c100;

			p->category = c;
			p->group = g > 1 ? i : -1;
			p->tier = t;
			if (units)
			{
				/* size doubles per tier, price per unit ~15% lower per tier */
				p->unit_size = base_size << t;
				p->unit_name = unit_name;
				c100 = base * (100 << t);
				for (int k = 0; k < t; k++)
					c100 = c100 * 85 / 100;
				p->cents = c100 / 100;
			}
			else
				/* tiers: +50% per step (good/better/best, S/M/L...) */
				p->cents = base * (2 + t) / 2;
			if (p->cents >= 1000)
				p->cents = (p->cents / 100) * 100 + 99;
			p->in_stock = rng_unif(&r) >= 0.03;
			cat->n++;
		}
		i += g;
	}
	free(catz.cdf);

	/* popularity: a random permutation of ranks */
	rank_of = xmalloc(sizeof(int) * P);
	by_rank = xmalloc(sizeof(int) * P);
	for (int i = 0; i < P; i++)
		by_rank[i] = i;
	shuffle(by_rank, P, &r);
	for (int k = 0; k < P; k++)
		rank_of[by_rank[k]] = k;
	zipf_init(&product_zipf, P, opt_zipf);

	/* category members, most popular first */
	for (int c = 0; c < C; c++)
	{
		categories[c].members = xmalloc(sizeof(int) * (categories[c].n + 1));
		categories[c].n = 0;
	}
	for (int i = 0; i < P; i++)
	{
		Category   *cat = &categories[products[i].category];

		cat->members[cat->n++] = i;
	}
	for (int c = 0; c < C; c++)
		qsort(categories[c].members, categories[c].n, sizeof(int), cmp_rank);

	/*
	 * Planted complements: a quarter of the products get 1-3 complements among
	 * the 30 most popular products of the partner category.
	 */
	comps = xmalloc(sizeof(Comp) * P * 3);
	ncomps = 0;
	for (int i = 0; i < P; i++)
	{
		Category   *partner = &categories[categories[products[i].category].partner];
		int			n;

		products[i].comp_start = ncomps;
		products[i].comp_n = 0;
		if (rng_unif(&r) >= 0.25 || partner->n == 0)
			continue;
		n = 1 + (int) rng_below(&r, 3);
		for (int k = 0; k < n; k++)
		{
			int			top = partner->n < 30 ? partner->n : 30;
			int			other = partner->members[rng_below(&r, top)];
			int			dup = 0;

			for (int j = 0; j < products[i].comp_n; j++)
				dup |= comps[products[i].comp_start + j].product == other;
			if (dup || other == i)
				continue;
			comps[ncomps].product = other;
			comps[ncomps].per_mille = 150 + (int) rng_below(&r, 451);
			ncomps++;
			products[i].comp_n++;
		}
	}
}

/* ---- orders ---------------------------------------------------------------- */

#define START_EPOCH 1704067200	/* 2024-01-01 00:00:00 UTC */
#define SPAN_SECONDS (731LL * 86400)	/* through 2025-12-31 */
#define MAX_BASKET 40

typedef struct
{
	int64_t		at;				/* seconds since START_EPOCH */
	int64_t		customer;
	long		first;			/* index into the line arrays */
	int			n;
	long		seq;			/* generation order: tie breaker */
} Order;

static Order *orders;
static long norders,
			cap_orders;
static int *line_product;
static int *line_qty;
static int64_t *line_cents;
static long nlines;

static void
add_line(Rng *r, int product, int consumable)
{
	const Product *p = &products[product];
	double		u = rng_unif(r);
	int			qty = 1;
	int64_t		cents = p->cents;

	if (u < 0.004)
		qty = -1;				/* a return */
	else if (u < 0.005)
		qty = 0;				/* a cancelled line */
	else if (rng_unif(r) < (consumable ? 0.30 : 0.08))
		qty = 2 + (int) rng_below(r, consumable ? 5 : 2);
	if (rng_unif(r) < 0.10)		/* discount of 10, 20 or 30 percent */
		cents = cents * (100 - 10 * (1 + (int) rng_below(r, 3))) / 100;
	line_product[nlines] = product;
	line_qty[nlines] = qty;
	line_cents[nlines] = cents;
	nlines++;
}

static int
in_basket(const int *items, int n, int product)
{
	for (int i = 0; i < n; i++)
		if (items[i] == product)
			return 1;
	return 0;
}

/*
 * One order: the given first item (or a popular draw), Zipf draws up to the
 * basket size, the planted complements of every item with their
 * probabilities, an occasional repeated line.
 */
static void
make_order(Rng *r, int64_t at, int64_t customer, int first_item, int extra_items)
{
	int			items[MAX_BASKET];
	int			n = 0;
	Order	   *o;

	if (norders == cap_orders)
	{
		cap_orders *= 2;
		orders = realloc(orders, sizeof(Order) * cap_orders);
		if (!orders)
		{
			fprintf(stderr, "gen_orders: out of memory\n");
			exit(1);
		}
	}
	if (first_item >= 0)
		items[n++] = first_item;
	for (int tries = 0; n < MAX_BASKET && tries < extra_items * 3 && n - (first_item >= 0) < extra_items; tries++)
	{
		int			p = by_rank[zipf_draw(&product_zipf, r)];

		if (!in_basket(items, n, p))
			items[n++] = p;
	}
	/* complements of the items drawn so far (not of complements) */
	for (int i = 0, base = n; i < base && n < MAX_BASKET; i++)
	{
		const Product *p = &products[items[i]];

		for (int j = 0; j < p->comp_n && n < MAX_BASKET; j++)
		{
			const Comp *c = &comps[p->comp_start + j];

			if ((int) rng_below(r, 1000) < c->per_mille && !in_basket(items, n, c->product))
				items[n++] = c->product;
		}
	}

	o = &orders[norders];
	o->at = at;
	o->customer = customer;
	o->first = nlines;
	o->seq = norders;
	for (int i = 0; i < n && nlines < opt_lines; i++)
	{
		int			consumable = categories[products[items[i]].category].consumable;

		add_line(r, items[i], consumable);
		/* 1% of lines are entered twice (same product, second line) */
		if (nlines < opt_lines && rng_unif(r) < 0.01)
			add_line(r, items[i], consumable);
	}
	o->n = (int) (nlines - o->first);
	if (o->n > 0)
		norders++;
}

static int
cmp_order(const void *a, const void *b)
{
	const Order *x = a,
			   *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int64_t ncustomers;

static void
build_orders(void)
{
	Rng			r,
				cr;
	double		p_more = 1.0 - 1.0 / opt_basket;	/* P(another item) */
	Zipf		custz;
	int		   *cust_perm;
	int64_t		nregular;

	rng_seed(&r, opt_seed, 2);
	rng_seed(&cr, opt_seed, 3);
	line_product = xmalloc(sizeof(int) * opt_lines);
	line_qty = xmalloc(sizeof(int) * opt_lines);
	line_cents = xmalloc(sizeof(int64_t) * opt_lines);
	cap_orders = 1024;
	orders = xmalloc(sizeof(Order) * cap_orders);

	ncustomers = opt_lines / 8 + 10;
	zipf_init(&custz, (int) ncustomers, 0.7);
	cust_perm = xmalloc(sizeof(int) * ncustomers);
	for (int64_t i = 0; i < ncustomers; i++)
		cust_perm[i] = (int) i + 1;
	shuffle(cust_perm, (int) ncustomers, &cr);

	/*
	 * Regulars: 3% of customers rebuy one consumable (among the 200 most
	 * popular products of a consumable category) every 14-90 days, plus
	 * sometimes something else.  About a fifth of the lines at most.
	 */
	nregular = ncustomers * 3 / 100;
	for (int64_t k = 0; k < nregular && nlines < opt_lines / 5; k++)
	{
		int64_t		customer = cust_perm[rng_below(&cr, ncustomers)];
		int			c = (int) rng_below(&cr, opt_categories);
		int			interval = 14 + (int) rng_below(&cr, 77);
		int64_t		at = (int64_t) rng_below(&cr, (uint64_t) interval * 86400);
		int			staple;

		for (int tries = 0; tries < opt_categories && !(categories[c].consumable && categories[c].n > 0); tries++)
			c = (c + 1) % opt_categories;
		if (categories[c].n == 0)
			continue;
		staple = categories[c].members[rng_below(&cr, categories[c].n < 200 ? categories[c].n : 200)];
		for (; at < SPAN_SECONDS && nlines < opt_lines / 5; at += (int64_t) interval * 86400)
		{
			int64_t		jitter = (int64_t) rng_below(&cr, 4 * 86400) - 2 * 86400;
			int64_t		t = at + jitter;

			if (t < 0)
				t = at;
			if (t >= SPAN_SECONDS)
				break;
			make_order(&r, t, customer, staple, rng_geometric(&r, 0.6));
		}
	}

	/* everyone else: random times, skewed customers, 1 + geometric items */
	while (nlines < opt_lines)
	{
		int64_t		at = (int64_t) rng_below(&r, SPAN_SECONDS);
		int64_t		customer = cust_perm[zipf_draw(&custz, &r)];
		int			n = 1 + rng_geometric(&r, 1.0 - p_more);

		if (n > MAX_BASKET)
			n = MAX_BASKET;
		make_order(&r, at, customer, -1, n);
	}
	qsort(orders, norders, sizeof(Order), cmp_order);
	free(custz.cdf);
	free(cust_perm);
}

/* ---- output ------------------------------------------------------------------ */

static void
put_cents(FILE *f, int64_t c)
{
	if (c < 0)
	{
		fputc('-', f);
		c = -c;
	}
	fprintf(f, "%" PRId64 ".%02d", c / 100, (int) (c % 100));
}

static void
write_products(FILE *f)
{
	for (int i = 0; i < opt_products; i++)
	{
		const Product *p = &products[i];

		fprintf(f, "%d\tcat%03d\t", i + 1, p->category + 1);
		if (p->group >= 0)
			fprintf(f, "vg%d", p->group + 1);
		else
			fputs("\\N", f);
		fputc('\t', f);
		put_cents(f, p->cents);
		fprintf(f, "\t%c\t", p->in_stock ? 't' : 'f');
		if (p->unit_size > 0)
			fprintf(f, "%d\t%s\n", p->unit_size, unit_names[p->unit_name]);
		else
			fputs("\\N\t\\N\n", f);
	}
}

static void
write_lines(FILE *f)
{
	char		ts[64];

	for (long k = 0; k < norders; k++)
	{
		const Order *o = &orders[k];
		time_t		t = (time_t) (START_EPOCH + o->at);
		struct tm	tm;

		gmtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S+00", &tm);
		for (int i = 0; i < o->n; i++)
		{
			long		l = o->first + i;

			fprintf(f, "%ld\t%d\t%" PRId64 "\t%s\t%d\t", k + 1, line_product[l] + 1,
					o->customer, ts, line_qty[l]);
			put_cents(f, line_cents[l]);
			fputc('\n', f);
		}
	}
}

static void
write_complements(FILE *f)
{
	for (int i = 0; i < opt_products; i++)
		for (int j = 0; j < products[i].comp_n; j++)
		{
			const Comp *c = &comps[products[i].comp_start + j];

			fprintf(f, "%d\t%d\t%d\n", i + 1, c->product + 1, c->per_mille);
		}
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: gen_orders [-s seed] [-n lines] [-p products] [-c categories] [-z zipf] [-b mean_basket]\n"
			"                  products|lines|complements|stats\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *what = NULL;
	static char buf[1 << 20];

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];

		if (a[0] == '-' && a[1] && !a[2] && i + 1 < argc)
		{
			const char *v = argv[++i];

			switch (a[1])
			{
				case 's':
					opt_seed = strtoull(v, NULL, 10);
					break;
				case 'n':
					opt_lines = strtol(v, NULL, 10);
					break;
				case 'p':
					opt_products = atoi(v);
					break;
				case 'c':
					opt_categories = atoi(v);
					break;
				case 'z':
					opt_zipf = atof(v);
					break;
				case 'b':
					opt_basket = atof(v);
					break;
				default:
					usage();
			}
		}
		else if (!what)
			what = a;
		else
			usage();
	}
	if (!what || opt_lines < 1 || opt_products < 10 || opt_categories < 2 ||
		opt_categories > opt_products || opt_zipf <= 0 || opt_basket < 1.0)
		usage();
	setvbuf(stdout, buf, _IOFBF, sizeof buf);

	build_catalog();
	if (strcmp(what, "products") == 0)
		write_products(stdout);
	else if (strcmp(what, "complements") == 0)
		write_complements(stdout);
	else if (strcmp(what, "lines") == 0)
	{
		build_orders();
		write_lines(stdout);
	}
	else if (strcmp(what, "stats") == 0)
	{
		long		returns = 0,
					multi = 0;

		build_orders();
		for (long l = 0; l < nlines; l++)
		{
			returns += line_qty[l] <= 0;
			multi += line_qty[l] > 1;
		}
		printf("products %d, categories %d, planted complements %d\n",
			   opt_products, opt_categories, ncomps);
		printf("lines %ld, orders %ld (%.2f lines per order), customers up to %" PRId64 "\n",
			   nlines, norders, (double) nlines / norders, ncustomers);
		printf("lines with quantity > 1: %ld, with quantity <= 0: %ld\n", multi, returns);
	}
	else
		usage();
	if (fflush(stdout) != 0 || ferror(stdout))
	{
		perror("gen_orders: write");
		return 1;
	}
	return 0;
}
