/*
 * history.h
 *		Purchase histories in one pass: the per-customer statistics of every
 *		product a customer bought, and the per-product repeat statistics of
 *		the whole shop, from order lines read customer by customer.
 *
 * The caller streams a tenant's lines grouped by customer (any order inside
 * a customer).  For each customer, ph_customer_runs() sorts the lines by
 * (product, time) and splits them into one run per product; iv_stats() of a
 * run's times gives the customer's statistics for that product, which
 * ph_products_add() folds into the product table.  ph_products_finish() then
 * gives, per product, the customers, repeat customers (2+ purchases),
 * regular customers (3+ purchases, CV of the gaps < 0.5), the population
 * interval (the median of the repeat customers' median gaps) and whether the
 * data says "consumable":
 *
 *	repeat customers >= 2, and repeat share (repeat customers / customers) at
 *	least max(0.02, half the shop's share: all repeat pairs / all pairs)
 *
 * Memory: the product table holds one entry per product and one double per
 * repeat (customer, product) pair; lines are held one customer at a time.
 */
#ifndef HISTORY_H
#define HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intervals.h"

typedef struct PhLine
{
	int64_t		product;
	int64_t		t;				/* purchase time, any integer unit */
	int32_t		idx;			/* the caller's index of the line */
} PhLine;

/* Sorts a customer's lines by (product, time, idx). */
extern void ph_sort_lines(PhLine *lines, size_t n);

/*
 * Length of the run of lines of lines[start].product starting at start
 * (lines sorted by ph_sort_lines).
 */
extern size_t ph_run_length(const PhLine *lines, size_t n, size_t start);

typedef struct PhProductStats
{
	int64_t		product;
	int64_t		customers;		/* customers who bought it */
	int64_t		repeaters;		/* ... in 2 or more purchases */
	int64_t		regulars;		/* ... in 3 or more at regular intervals (CV < 0.5) */
	double		population_days;	/* median of the repeaters' median gaps */
	bool		has_population; /* repeaters > 0 */
	bool		consumable;		/* by the data, see above */
	/* the repeat customers' median gaps (sorted once finished) */
	double	   *gaps;
	size_t		ngaps;
	size_t		cap;
} PhProductStats;

typedef struct PhProducts
{
	PhProductStats *slots;		/* open addressing; product INT64_MIN = free */
	size_t		nslots;
	size_t		n;
	bool		finished;		/* ph_products_finish ran: slots[0 .. n) */
	int64_t		pairs;			/* (customer, product) pairs seen */
	int64_t		repeat_pairs;	/* ... with 2 or more purchases */
} PhProducts;

extern void ph_products_init(PhProducts *p);

/* Folds one customer's statistics of one product in. */
extern void ph_products_add(PhProducts *p, int64_t product, const IvStats *st);

/*
 * Computes the per-product results; returns them sorted by product id (n
 * in *n), each with its repeat customers' median gaps sorted (gaps,
 * ngaps).  The table is consumed: call ph_products_free() afterwards.
 */
extern PhProductStats *ph_products_finish(PhProducts *p, size_t *n);

extern void ph_products_free(PhProducts *p);

/*
 * Incremental refresh: the sorted multiset base, minus one element equal to
 * each value of remove (sorted in place here), plus add, sorted into out
 * (room for nbase + nadd); returns its size.
 */
extern size_t ph_multiset_update(const double *base, size_t nbase, double *remove,
								 size_t nremove, const double *add, size_t nadd, double *out);

/* The consumable rule above, for one product given the shop's totals. */
extern bool ph_consumable(int64_t customers, int64_t repeaters,
						  int64_t shop_pairs, int64_t shop_repeat_pairs);

#endif							/* HISTORY_H */
