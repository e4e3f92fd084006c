/*
 * upgrade.h
 *		Ranking core for upsell (the better version) and downsell (the cheaper
 *		one): for every product of a catalog at once, the pricier and cheaper
 *		alternatives of the same variant group or category, scored by evidence
 *		from the order history.
 *
 * One call does the whole catalog:
 *
 *	1. the order lines are read once, customer by customer: per product
 *	   the number of distinct customers who bought it, per variant group and
 *	   per category the distinct customers who bought any of its products,
 *	   and per ordered pair (a, b) of the same group or category, b within
 *	   a's price range (below), the number of customers who bought a and
 *	   later (strictly) bought b: the upgrade paths;
 *	2. every product scans its group and its category sorted by price, up to
 *	   `window` neighbours each way within [price / max_ratio, price *
 *	   max_ratio], plus every product its buyers later moved to; each
 *	   candidate is scored and the best `per_product` of each direction kept.
 *
 * A candidate qualifies when it is in the same variant group (and not in a
 * different category) or in the same category.  Same-group candidates rank
 * before same-category ones ("first choice"), then by score, then by id.
 *
 *	upgrade score  = 0.5 * path_rate + 0.3 * popularity + 0.2 * closeness
 *	downsell score = 0.5 * closeness + 0.5 * popularity
 *
 *	path_rate	customers who bought a and later b / customers who bought a
 *	popularity	customers who bought b / customers who bought anything in the
 *				pool (the group when same_group, else the category)
 *	closeness	cheaper price / dearer price, in (0, 1): 1 is a tiny step
 */
#ifndef UPGRADE_H
#define UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct UpgProduct
{
	int64_t		id;
	int32_t		group;			/* dense variant group code, -1 when none */
	int32_t		category;		/* dense category code, -1 when none */
	double		price;			/* > 0 */
} UpgProduct;

typedef struct UpgLine
{
	int64_t		customer;		/* a customer's id, or a guest order's key */
	int64_t		product;		/* product id */
	int64_t		time;			/* any monotone clock */
	bool		has_time;
	bool		guest;			/* customer is an order's key (a guest's
								 * order): never the customer of that id */
} UpgLine;

typedef struct UpgParams
{
	double		max_ratio;		/* > 1: upgrades up to price * max_ratio,
								 * downsells down to price / max_ratio */
	int			per_product;	/* candidates kept per product and direction */
	int			window;			/* price neighbours scanned per pool and
								 * direction */
	int			max_customer_products;	/* customers with more distinct
										 * products give no paths */
} UpgParams;

typedef struct UpgCandidate
{
	uint32_t	product;		/* index into the products given */
	uint32_t	candidate;
	bool		upgrade;		/* true: pricier; false: cheaper */
	bool		same_group;
	int64_t		paths;			/* customers who bought product, later
								 * candidate */
	double		path_rate;
	double		popularity;
	double		closeness;
	double		score;
} UpgCandidate;

/*
 * The counts step 1 makes, which the ranking reads: kept by a caller (in
 * chunks, upg_counts_chunk) so that a later computation over the same
 * catalog can start from them and fold in only the customers whose
 * purchases changed (upg_stream_load, upg_stream_set_sign) instead of
 * reading every line again.  Products, groups and categories are indexes
 * of the stream's copy of the catalog sorted by (category, price, id), which
 * the same catalog always gives; catalog_hash tells the same catalog (and
 * the parameters that shape the counts) from another.
 */
typedef struct UpgCounts
{
	uint64_t	catalog_hash;
	size_t		n;				/* products */
	int32_t		ngroups;
	int32_t		ncats;
	int64_t    *buyers;			/* per sorted product: distinct customers */
	int64_t    *group_buyers;
	int64_t    *cat_buyers;
	uint64_t   *pair_keys;		/* (a << 32 | b) sorted products, sorted */
	int64_t    *pair_counts;	/* customers with the path, > 0 */
	size_t		npairs;
	int64_t		big_customers;	/* customers skipped for paths */
	int64_t		untimed_customer_lines; /* a customer's lines without a time */
} UpgCounts;

typedef struct UpgResult
{
	UpgCandidate *cands;		/* grouped by product, upgrades first, each
								 * direction in rank order */
	size_t		ncands;
	int64_t    *buyers;			/* per product index: distinct customers */
	int64_t		lines_used;
	int64_t		lines_unknown;	/* lines of products not given */
	UpgCounts	counts;			/* what the candidates were ranked from
								 * (big_customers: skipped for paths;
								 * npairs: distinct (a, b) with a path, b
								 * within a's price range) */
	bool		inconsistent;	/* a count fell below 0: what was taken out
								 * (upg_stream_set_sign) was never counted */
} UpgResult;

/*
 * Computes the candidates of every product from lines in any order (held
 * and grouped as below, all at once).  Returns NULL, or a message (nothing
 * allocated) when the input is invalid: duplicate product ids, a price that
 * is not positive, bad params.
 */
extern const char *upg_compute(const UpgProduct *products, size_t nproducts,
							   const UpgLine *lines, size_t nlines,
							   const UpgParams *params, UpgResult *out);

extern void upg_result_free(UpgResult *r);

/*
 * The same computation over lines too many to hold at once: begin with the
 * catalog (NULL, or a message when it is invalid), hold lines, group them,
 * and finish, which groups what is still held and frees the stream;
 * upg_stream_free() drops a stream without finishing it.
 *
 * upg_stream_hold keeps one line (16 bytes, its product as an index; a line
 * of a product not given is only counted; a guest's line is its order's,
 * apart from every customer's) and returns the bytes the held
 * lines take, so that the caller can bound them; upg_stream_group feeds the
 * held lines customer by customer (a counting sort by customer, no
 * comparison sort) and releases them; upg_stream_drop_held releases them
 * unfed.  A caller whose lines do not fit holds a subset of the customers
 * at a time (every line of each), grouping after each subset.
 */
typedef struct UpgStream UpgStream;

extern const char *upg_stream_begin(const UpgProduct *products, size_t nproducts,
									const UpgParams *params, UpgStream **out);
extern size_t upg_stream_hold(UpgStream *s, int64_t customer, bool guest, int64_t product,
							  bool has_time, int64_t time);
extern void upg_stream_group(UpgStream *s);
extern void upg_stream_drop_held(UpgStream *s);
extern void upg_stream_finish(UpgStream *s, UpgResult *out);
extern void upg_stream_free(UpgStream *s);

/*
 * Folding in what changed, instead of every line: after upg_stream_begin,
 * upg_stream_load the chunks of counts an earlier finish kept, in order,
 * until upg_stream_loaded; then, with upg_stream_set_sign(-1), hold and
 * group what each changed customer had bought when they were counted (their
 * earliest and latest time per product as two timed lines), which takes
 * their share out of every count, and with sign +1 hold and group all they
 * have bought now, and the new guests' orders.  finish then ranks from the
 * counts so changed; they are exactly those of every line, as long as the
 * earlier counts were of the same catalog (UPG_LOAD_STALE otherwise), no
 * customer's line lacked a time, before (STALE) or now (the caller checks
 * upg_stream_untimed_customer_lines), and what was taken out had been
 * counted (UpgResult.inconsistent otherwise).  A stream whose load was
 * refused may hold part of the counts: free it and begin again.
 */
typedef enum UpgLoad
{
	UPG_LOAD_OK,
	UPG_LOAD_STALE,				/* another catalog, parameters or format, or
								 * customers' lines without a time: count
								 * every line instead */
	UPG_LOAD_CORRUPT			/* not counts upg_counts_chunk wrote */
} UpgLoad;

extern size_t upg_counts_nchunks(const UpgCounts *c, size_t max_pairs);
extern size_t upg_counts_chunk_size(const UpgCounts *c, size_t max_pairs, size_t chunk);
extern void upg_counts_write_chunk(const UpgCounts *c, size_t max_pairs, size_t chunk, void *out);
extern UpgLoad upg_stream_load(UpgStream *s, size_t chunk, const void *data, size_t len);
extern bool upg_stream_loaded(const UpgStream *s);
extern void upg_stream_set_sign(UpgStream *s, int sign);
extern int64_t upg_stream_untimed_customer_lines(const UpgStream *s);

#endif							/* UPGRADE_H */
