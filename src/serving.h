/*
 * serving.h
 *		The request path of the funnel stages, shared by its files:
 *
 *		serving_common.c	the extension's schema, the saved SPI plans, the
 *							start and end of a request, small helpers
 *		serving_read.c		direct reads of tables (serving_state, cart_model,
 *							on Citus from the tenant's shard)
 *		serving_rules.c		the merchant's rules, cached per backend and tenant
 *		serving_offers.c	proposals and the merge of any stage (_merge_offers)
 *		serving_cart.c		the cart stage (cart_offers)
 *		serving_page.c		the product page stage (_product_page_offers,
 *							_product_page_offers_of)
 *		serving_owned.c		what a customer owns (_customer_owned), with a
 *							per-backend cache of the products' facts
 *		serving_customer.c	a customer's recommendations
 *							(recommend_for_customer) and the thank-you
 *							page's offers of what they own
 *		serving_post_purchase.c	the thank-you page stage
 *							(post_purchase_offers)
 *		serving_email.c		the post-purchase email sequence (email_sequence)
 *		serving_tiers.c		volume tiers priced per cart line (_tier_offers)
 *
 * Data flows request -> rules cache / model reads -> proposal -> the merge
 * of src/core/offers.c -> the SRF's tuplestore.
 */
#ifndef UPSELL_SERVING_H
#define UPSELL_SERVING_H

#include "access/htup.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/numeric.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#include "offers.h"

typedef enum Stage
{
	STAGE_PRODUCT_PAGE,
	STAGE_CART,
	STAGE_POST_PURCHASE,
	NSTAGES
} Stage;

extern const char *const serving_stage_names[NSTAGES];

#define DEFAULT_MAX_OFFERS	6
#define POPULAR				16	/* bestsellers cached per tenant to fill a stage's
								 * slots; more are read when these do not */
#define POPULAR_BATCH		64	/* read at a time past the cached ones */

/*
 * What the serving caches are keyed by: the versions drawn by the last
 * change of the merchant's rules or registrations (serving_state) and by
 * the last refresh (model_state), each from one sequence and never reused,
 * and serving_state's table, new with every install of the extension.
 */
typedef struct ServingVersion
{
	Oid			state_rel;
	int64		rules;
	int64		models;
} ServingVersion;

/* ---- the merchant's rules, cached per tenant (serving_rules.c) ------------ */

typedef enum OfferTrigger
{
	TRIGGER_ALWAYS,
	TRIGGER_PRODUCT,
	TRIGGER_CATEGORY,
	TRIGGER_CART_VALUE
} OfferTrigger;

typedef struct PinnedOffer
{
	int64		offer_id;
	Stage		stage;
	OfferTrigger trigger;
	int64		trigger_product;
	char	   *trigger_category;
	Numeric		min_cart_value;
	bool		has_from,
				has_to;
	TimestampTz active_from,
				active_to;
	int64	   *ids;
	int			nids;
	Numeric		discount;
	char	   *reason;
	double		priority;
	bool		in_stock;		/* every product known and in stock */
} PinnedOffer;

typedef struct Threshold
{
	int64		threshold_id;
	Numeric		amount;
	char	   *currency;		/* NULL: any */
	char	   *reward;			/* NULL: none said */
	bool		has_from,
				has_to;
	TimestampTz active_from,
				active_to;
} Threshold;

/* A volume tier the merchant set: of a product, or of a category's products. */
typedef struct VolumeTier
{
	int64		product_id;		/* a product's tier */
	char	   *category;		/* a category's tier (product_id 0) */
	int32		min_quantity;
	Numeric		unit_price;		/* NULL: percent_off of the list price */
	Numeric		percent_off;
} VolumeTier;

typedef struct StageSettings
{
	int			max_offers;
	double		weight[OFFER_NTYPES];
} StageSettings;

typedef struct TenantRules
{
	int64		tenant_id;		/* hash key */
	MemoryContext cxt;			/* what is read for it (a child of the cache's) */
	StageSettings stage[NSTAGES];
	PinnedOffer *pinned;
	int			npinned;
	int64	   *excluded;		/* ascending: never offered (products, categories' products) */
	int			nexcluded;
	int64	   *pair_product;	/* never offered next to pair_with (context) */
	int64	   *pair_with;
	int			npairs;
	Threshold  *thresholds;
	int			nthresholds;
	int64	   *tiered;			/* ascending: products with tiers, own or their category's */
	int			ntiered;
	VolumeTier *product_tiers;	/* by product id, then min_quantity */
	int			nproduct_tiers;
	VolumeTier *category_tiers; /* by category (strcmp), then min_quantity */
	int			ncategory_tiers;
	int64		popular[POPULAR];	/* in stock, by popularity */
	int64		popular_rank[POPULAR];
	char	   *popular_category[POPULAR];	/* NULL: none */
	int			npopular;
	bool		has_candidates;
	TimestampTz candidates_built_at;
} TenantRules;

extern ServingVersion serving_check_version(void);
extern int64 serving_resolve_tenant(bool tenant_null, int64 tenant_id);
extern void serving_check_bound(int64 tenant_id);
extern TenantRules *serving_tenant_rules(int64 tenant_id);

/* ---- the schema, plans and helpers (serving_common.c) --------------------- */

/* The saved plans, valid for one schema of the extension. */
typedef struct ServingSchema
{
	Oid			nsp;
	char	   *nspname;		/* quoted */
	SPIPlanPtr	page_product;
	SPIPlanPtr	page_list;
	SPIPlanPtr	page_bundles;
	SPIPlanPtr	in_stock;
	SPIPlanPtr	categories;
	SPIPlanPtr	variant;
	SPIPlanPtr	tier_products;
	SPIPlanPtr	popular_after;
	/* what a customer owns (serving_owned.c) */
	SPIPlanPtr	owned_history;
	SPIPlanPtr	owned_catalog;
	SPIPlanPtr	owned_intervals;
	SPIPlanPtr	owned_has_rules;
	SPIPlanPtr	owned_rules;
	SPIPlanPtr	shop_zone;
	/* some products' pair lists (the thank-you page, a customer's recommendations) */
	SPIPlanPtr	pair_lists;
	/* the thank-you page (serving_post_purchase.c) */
	SPIPlanPtr	substitute_categories;
	/* the step up from a durable (serving_email.c) */
	SPIPlanPtr	group_upgrades;
	/* a customer's recommendations (serving_customer.c) */
	SPIPlanPtr	customer_orders;
	SPIPlanPtr	category_bestsellers;
	SPIPlanPtr	bestsellers;
} ServingSchema;

extern ServingSchema serving;

/*
 * The queries run with the caller's search_path, so they name every
 * operator and function with its schema: an operator of another schema
 * that matches the argument types exactly would win over pg_catalog's.
 */
#define EQ " OPERATOR(pg_catalog.=) "

extern ServingVersion serving_begin_request(FunctionCallInfo fcinfo);
extern void serving_begin_request_unchecked(FunctionCallInfo fcinfo);
extern void serving_begin_call(FunctionCallInfo fcinfo);
extern void serving_end_request(void);
extern void serving_use_spi(void);
extern char *serving_qualify(const char *query);
extern uint64 serving_run(SPIPlanPtr plan, Datum *args, const char *nulls);
extern uint64 serving_tenant_query(const char *query, int64 tenant_id);
extern struct HTAB *serving_cache_table(MemoryContext *cxt, const char *name, Size keysize,
										Size entrysize, long nelem);
extern Datum serving_col(int row, int column, bool *isnull);
extern char *serving_col_text(int row, int column);
extern int	serving_cmp_int64(const void *a, const void *b);
extern int	serving_sort_unique(int64 *a, int n);
extern int	serving_sorted_index(const int64 *a, int n, int64 x);
extern bool serving_sorted_contains(const int64 *a, int n, int64 x);
extern bool serving_numeric_at_most(Numeric a, Numeric b);
extern void serving_check_finite_at(TimestampTz at);
extern char *serving_rounded_text(double x, int places);
extern char *serving_shop_day(const char *zone, TimestampTz t);

/*
 * Product ids numbered in the order first seen (0, 1, ...), for the sums of
 * a noisy-OR over several lists: an open-addressing table sized for `most`
 * ids at the most.
 */
typedef struct IdNumbers
{
	int64	   *ids;			/* by number */
	int			n;				/* ids numbered */
	int64	   *keys;			/* by slot */
	int		   *numbers;		/* by slot; -1: free */
	int			size;			/* a power of 2, at least twice most */
} IdNumbers;

extern void serving_id_numbers_init(IdNumbers *t, int most);
extern int	serving_id_number(IdNumbers *t, int64 id, bool *added);

/* A product's list of pair_list_model: partners and scores at the same positions. */
typedef struct PairList
{
	Datum	   *others;
	bool	   *others_null;
	Datum	   *scores;
	bool	   *scores_null;
	int			n;				/* 0: none listed */
} PairList;

extern int64 serving_pair_lists(int64 tenant_id, const int64 *ids, int n, PairList *lists);
extern Stage serving_stage_of(const char *name);

/* ---- direct reads (serving_read.c) ---------------------------------------- */

/*
 * The columns of cart_model that C reads by number: their one definition.
 * The model's SQL definition (src/sql/90_funnel.sql) lists them in this
 * order; serving_read_cart_lines checks the names before it reads a row.
 */
#define CART_MODEL_COLUMNS(X) \
	X(CART_TENANT_ID, "tenant_id") \
	X(CART_PRODUCT_ID, "product_id") \
	X(CART_PRICE, "price") \
	X(CART_CATEGORY, "category") \
	X(CART_IN_STOCK, "in_stock") \
	X(CART_COMPLEMENT_IDS, "complement_ids") \
	X(CART_COMPLEMENT_LOG_MISS, "complement_log_miss") \
	X(CART_UPGRADE_ID, "upgrade_id") \
	X(CART_UPGRADE_SCORE, "upgrade_score") \
	X(CART_UPGRADE_REASON, "upgrade_reason") \
	X(CART_COMPLEMENT_CATEGORIES, "complement_categories") \
	X(CART_SUBSTITUTE_IDS, "substitute_ids") \
	X(CART_SUBSTITUTE_CATEGORIES, "substitute_categories")

#define CART_COLUMN_ENUM(sym, name) sym,
typedef enum CartModelColumn
{
	CART_MODEL_COLUMNS(CART_COLUMN_ENUM)
	CART_MODEL_NCOLUMNS
} CartModelColumn;
#undef CART_COLUMN_ENUM

typedef struct CartLine
{
	int64		product_id;
	Numeric		price;			/* NULL: none */
	char	   *category;
	bool		in_stock;
	int64	   *complements;
	double	   *complement_log_miss;	/* ln(1 - score), as cart_model stores it */
	int			ncomplements;
	bool		has_upgrade;
	int64		upgrade_id;
	double		upgrade_score;
	char	   *upgrade_reason;
	char	  **complement_categories;	/* parallel to complements; NULL: none */
	int64	   *substitute_ids; /* its variant group's other products */
	int			nsubstitute_ids;
	char	  **substitute_categories;	/* categories whose products substitute it */
	int			nsubstitute_categories;
} CartLine;

extern Relation serving_open_for_read(const char *name);
extern void serving_check_select(Relation rel);
extern Relation serving_open_tenant_shard(Relation rel, int64 tenant_id);
extern ServingVersion serving_read_version(void);

/* Each tenant's models version (model_versions): which tenants a refresh changed. */
typedef struct TenantVersions
{
	int			n;
	int64	   *tenants;		/* ascending */
	int64	   *versions;
} TenantVersions;

extern TenantVersions serving_read_tenant_versions(MemoryContext cxt);
extern void serving_forget_refreshed(struct HTAB *table, TenantVersions *versions, MemoryContext cxt,
									 void (*forget) (void *entry));
extern CartLine *serving_read_cart_lines(int64 tenant_id, const int64 *items, int nitems,
										 int *nlines);

/* What substitutes some of the lines: never offered next to them. */
typedef struct Substitutes
{
	int64	   *ids;			/* ascending */
	int			nids;
	const char **categories;
	int			ncategories;
} Substitutes;

extern Substitutes serving_substitutes_of(const CartLine *lines, int nlines);
extern bool serving_is_substitute(const Substitutes *s, int64 id, const char *category);

/* ---- proposals and the merge (serving_offers.c) --------------------------- */

/* What the caller shows with an offer; the merge sees OfferCandidate. */
typedef struct OfferRow
{
	Datum		discount;		/* numeric */
	char	   *reason;
} OfferRow;

typedef struct Proposal
{
	OfferCandidate *c;
	OfferRow   *row;
	int			n;
	int			cap;
	char	   *note;			/* what the request lacked, added to every
								 * reason; NULL: nothing */
} Proposal;

extern uint32 serving_allowed_types(text *experiment, text *unit_id, Stage stage, int64 tenant_id);
extern bool serving_excluded(const TenantRules *r, int64 id, const int64 *context, size_t ncontext);
extern void serving_proposal_init(Proposal *p, int cap);
extern OfferCandidate *serving_propose(Proposal *p, OfferType type, int64 *ids, int nids,
									   double score, Datum discount, char *reason);
extern Datum serving_zero_discount(void);
extern bool serving_active_at(bool has_from, TimestampTz from, bool has_to, TimestampTz to,
							  TimestampTz at);
extern void serving_propose_pinned(Proposal *p, const TenantRules *r, Stage stage,
								   const int64 *context, size_t ncontext,
								   char **categories, int ncategories, Numeric cart_value,
								   TimestampTz now);
/* true: never offer this bestseller here (a substitute of the context, ...) */
typedef bool (*PopularSkip) (void *arg, int64 id, const char *category);
extern void serving_propose_popular(Proposal *p, const TenantRules *r, Stage stage,
									const int64 *context, size_t ncontext,
									PopularSkip skip, void *arg);
extern void serving_emit(FunctionCallInfo fcinfo, Proposal *p, const TenantRules *r, Stage stage,
						 uint32 allowed, const int64 *context, size_t ncontext);
extern text *serving_opt_text(FunctionCallInfo fcinfo, int arg);

/* ---- what a customer owns (serving_owned.c) ------------------------------ */

/* One product a customer bought: a row of upsell._owned_product. */
typedef struct OwnedProduct
{
	int64		product_id;
	bool		purchases_null;
	int64		purchases;
	bool		last_null;
	TimestampTz last_at;
	bool		median_null;
	double		median_gap_days;
	bool		cv_null;
	double		cv;
	bool		interval_null;
	double		interval_days;	/* the customer's median gap, else the product's */
	bool		due_null;
	TimestampTz next_due;		/* a durable's only when asked for */
	bool		confidence_null;
	double		confidence;
	const char *category;		/* NULL: none (the facts cache's string) */
	bool		consumable;
	bool		blocked_null;
	bool		blocked;		/* never offered to the customer */
} OwnedProduct;

typedef struct CustomerOwned
{
	OwnedProduct *products;		/* by product id, ascending */
	int64	   *ids;			/* their ids */
	int			n;
	char	   *zone;			/* the shop's time zone (_shop_zone) */
} CustomerOwned;

extern CustomerOwned serving_customer_owned(int64 tenant_id, int64 customer, bool due_by_null,
											TimestampTz due_by, bool every_due_date);
extern int	serving_most_recent(const OwnedProduct **items, int n, int keep);
extern void serving_begin_facts(ServingVersion version);
extern void serving_cache_facts(int64 tenant_id, const int64 *ids, int n);

/* A product as product_model lists it, in the facts cache. */
typedef struct CatalogFacts
{
	bool		known;			/* product_model has it */
	bool		in_stock;
	const char *category;		/* NULL: none */
	const char *variant_group;	/* NULL: none */
	Numeric		price;			/* NULL: none */
	const char *title;			/* NULL: none */
} CatalogFacts;

extern const CatalogFacts *serving_cached_facts(int64 tenant_id, int64 id);

/* ---- a customer's offers (serving_customer.c) ----------------------------- */

/* An offer of something the customer owns: a restock, a subscription pitch. */
typedef struct OwnedOffer
{
	OfferType	type;
	int64		product_id;
	double		score;
	char	   *reason;
} OwnedOffer;

/* A row of recommend_for_customer. */
typedef struct Recommended
{
	int64		product_id;
	bool		score_null;
	double		score;
	char	   *reason;
	bool		restock;		/* an owned product coming due */
	int64	   *because;		/* NULL: a bestseller */
	int			nbecause;
} Recommended;

extern Recommended *serving_recommend(int64 tenant_id, const TenantRules *rules, const CustomerOwned *owned,
									  int k, TimestampTz at, double half_days, int *n);
extern double serving_half_life_days(Datum half_life);
extern TimestampTz serving_restock_horizon(TimestampTz at);
extern OwnedOffer *serving_owned_offers(const CustomerOwned *owned, bool at_null, TimestampTz at,
										int *n);

/* ---- volume tiers (serving_tiers.c) --------------------------------------- */

/* A cart line priced by its tiers. */
typedef struct TierQuote
{
	bool		known;			/* product_model lists it with a price above 0 */
	bool		tiered;			/* tiers apply: its own, else its category's */
	Numeric		price;			/* the list price */
	Numeric		unit_price;		/* a unit's price at the line's quantity */
	bool		has_next;		/* a further tier lowers it, and more may be offered */
	int32		next_quantity;
	Numeric		new_unit_price;
	Numeric		total_saving;	/* next_quantity x (unit_price - new_unit_price) */
	char	   *reason;
} TierQuote;

extern TierQuote *serving_quote_tiers(const TenantRules *r, int64 tenant_id, const int64 *ids,
									  const int32 *units, int n);

#endif							/* UPSELL_SERVING_H */
