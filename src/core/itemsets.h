/*
 * itemsets.h
 *		Frequent itemset mining (FP-growth) and association rules with
 *		several items on either side.
 *
 * Input is the same CoocLines the co-occurrence core collects: (order,
 * product) lines in any order, repeats allowed.  A product counts once per
 * order.  The lines are read once to count products; the orders are then
 * written into an FP-tree (items ranked by descending order count) and
 * mined by FP-growth: conditional trees, never a rescan of the orders.
 *
 * Memory is bounded: every allocation of the miner (trees, pattern bases,
 * the result) is charged against memory_limit, and mining stops with
 * ITEMSETS_MEMORY_LIMIT when it would be exceeded.  What was allocated is
 * freed before returning, so the caller may report the error and go on.
 *
 * Items are dense ranks 0..nitems-1 of the frequent products (rank 0 the
 * most frequent; ties by product id).  Each itemset lists its ranks in
 * ascending order.
 */
#ifndef ITEMSETS_H
#define ITEMSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cooccur.h"

typedef struct ItemsetParams
{
	int64_t		min_count;		/* orders an itemset must occur in, >= 1 */
	int			max_size;		/* largest itemset, >= 1 */
	size_t		memory_limit;	/* bytes; 0: no limit */
	bool		free_lines;		/* free the lines once the orders are read
								 * (before the tree): they are then empty */
} ItemsetParams;

typedef enum ItemsetStatus
{
	ITEMSETS_OK = 0,
	ITEMSETS_MEMORY_LIMIT,
	ITEMSETS_FOLD_UNSUPPORTED,	/* itemsets_fold: sets of more than 3, over
								 * 2^21 frequent products, or orders so large
								 * that mining counts them better */
	ITEMSETS_STORED_STALE		/* itemsets_fold: a stored set is not one of
								 * frequent products of the lines */
} ItemsetStatus;

typedef struct Itemsets
{
	int64_t		transactions;	/* orders (distinct order keys) */
	uint32_t	nitems;			/* frequent products */
	int64_t    *item_ids;		/* product id by rank */
	int64_t    *item_counts;	/* orders containing it, by rank */
	size_t		nsets;
	size_t	   *set_start;		/* nsets + 1 offsets into members */
	uint32_t   *members;		/* ranks, ascending within a set */
	int64_t    *set_counts;		/* orders containing the whole set */
	size_t		peak_bytes;		/* most memory the miner held at once */
	/* lookup index built by itemsets_rules() */
	size_t		hash_mask;
	size_t	   *hash;			/* set index + 1, 0 empty */
} Itemsets;

/* Lowest order count satisfying min_support over n orders: ceil(s * n). */
extern int64_t itemsets_min_count(double min_support, int64_t transactions);

/*
 * Mines every itemset of 1..max_size products that occurs in at least
 * min_count orders.  The lines are compacted (sorted) in place, and freed
 * (left empty) with params->free_lines, so that they and the FP-tree are
 * never held together.  On ITEMSETS_MEMORY_LIMIT, *out holds no memory.
 */
extern ItemsetStatus itemsets_mine(CoocLines *lines, const ItemsetParams *params,
								   Itemsets *out);

/* Frequent sets as stored between refreshes: product ids ascending within a set. */
typedef struct StoredSets
{
	size_t		nsets;
	const size_t *start;		/* nsets + 1 offsets into ids */
	const int64_t *ids;
	const int64_t *counts;		/* orders containing the whole set */
} StoredSets;

/*
 * The sets of 2..max_size (2 or 3) products in at least min_count orders of
 * the lines (every line, old and new), with what itemsets_mine would give
 * for them -- transactions, ranks, counts -- but no sets of one product:
 * from stored, every such set of the lines before, mined at the same
 * min_count, and changed, the keys of the orders that gained lines since
 * (orders only gained lines).  A set outside every changed order keeps its
 * stored count; those inside one are counted over every order.  The lines
 * are compacted in place.  ITEMSETS_STORED_STALE: stored names a set that
 * cannot be one of these lines' before (a product no longer frequent), so
 * the lines lost some or the sets were stored at another count.
 */
extern ItemsetStatus itemsets_fold(CoocLines *lines, const StoredSets *stored,
								   const int64_t *changed, size_t nchanged,
								   const ItemsetParams *params, Itemsets *out);

/* Counts transactions in compacted lines (distinct order keys). */
extern int64_t itemsets_count_orders(CoocLines *lines);

extern void itemsets_free(Itemsets *sets);

/* Order count of a set of ranks (ascending), or -1 if not frequent. */
extern int64_t itemsets_lookup(Itemsets *sets, const uint32_t *ranks, int k);

typedef struct ItemsetRule
{
	const uint32_t *antecedent; /* ranks, ascending */
	int			nantecedent;
	const uint32_t *consequent;
	int			nconsequent;
	int64_t		count;			/* orders with antecedent and consequent */
	int64_t		antecedent_count;
	int64_t		consequent_count;
} ItemsetRule;

typedef void (*itemset_rule_fn) (void *arg, const ItemsetRule *rule);

/*
 * Calls fn for every rule A => C with A and C disjoint, non-empty, A u C a
 * frequent itemset, |C| <= max_consequent and confidence
 * count(A u C) / count(A) >= min_confidence.  Builds a lookup index over
 * the sets (charged against memory_limit).
 */
extern ItemsetStatus itemsets_rules(Itemsets *sets, double min_confidence,
									int max_consequent, size_t memory_limit,
									itemset_rule_fn fn, void *arg);

/*
 * Lift of set i: its support over the product of its items' supports,
 * computed in one fixed order (the SQL functions report this value).
 */
extern double itemsets_lift(const Itemsets *sets, size_t i);

/* One kept set of an item, see itemsets_top_per_item. */
typedef struct ItemsetTop
{
	uint32_t	item;			/* rank of the item it is kept for */
	int			rank;			/* 1 = best */
	size_t		set;			/* index into the sets */
	double		lift;
	const int64_t *ids;			/* its product ids, ascending */
	int			size;
} ItemsetTop;

typedef void (*itemset_top_fn) (void *arg, const ItemsetTop *top);

/*
 * For each item, its best k sets of min_size items or more with a lift above
 * min_lift that contain it: by lift descending, then order count descending,
 * then product ids ascending (compared as sorted arrays, a shorter prefix
 * first), as ORDER BY lift DESC, count DESC, items would rank them.  Calls
 * fn for each kept set, item by item.
 */
extern void itemsets_top_per_item(const Itemsets *sets, int min_size, double min_lift,
								  int k, itemset_top_fn fn, void *arg);

#endif							/* ITEMSETS_H */
