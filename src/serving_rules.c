/*
 * serving_rules.c
 *		The merchant's rules -- stage settings, pinned offers, exclusions,
 *		thresholds, whether volume tiers exist, the bestsellers -- read once per
 *		backend and tenant.
 *
 * The cache is keyed by the versions of the rules and of the models
 * (serving_read_version): every change of a rules table draws
 * serving_state.config_version anew, every refresh model_state's, from a
 * sequence (transactional and never reused, so a change rolled back cannot
 * leave a stale cache behind).  A change of the rules empties the cache; a
 * refresh only drops the tenants it refreshed (model_versions).
 *
 * The cache is the backend's, but privileges are the current role's: every
 * request checks that the role may read each table the rules come from, as
 * the queries that filled the cache checked it for the role that ran them.
 * A role without SELECT on upsell.offers gets 42501 whether or not a
 * superuser filled the cache before a SET ROLE.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "access/xact.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "serving.h"
#include "upsell.h"

/* The relations the rules are read from (the loaders below). */
#define RULE_RELATIONS "order_source", "stage_settings", "offers", \
	"product_model", "exclusions", "thresholds", "threshold_candidates", "volume_tiers"
static const char *const rule_relations[] = {RULE_RELATIONS};

/* The cache and its key. */
static struct
{
	bool		valid;
	ServingVersion version;
	int			per_tenant;		/* -1: no orders registered */
	MemoryContext cxt;
	HTAB	   *tenants;
	TenantVersions tenant_versions; /* as of version.models */
	Oid			rule_rels[lengthof((const char *[]) {RULE_RELATIONS})];
} cache;

/* Raises unless the current role may SELECT from every relation of the rules. */
static void
check_rules_readable(void)
{
	Oid			role = GetUserId();
	int			i;

	for (i = 0; i < lengthof(rule_relations); i++)
	{
		AclResult	acl;

		if (!OidIsValid(cache.rule_rels[i]))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation %s.%s does not exist", serving.nspname, rule_relations[i])));
		acl = pg_class_aclcheck(cache.rule_rels[i], role, ACL_SELECT);
		if (acl != ACLCHECK_OK)
			aclcheck_error(acl, get_relkind_objtype(get_rel_relkind(cache.rule_rels[i])),
						   rule_relations[i]);
	}
}

/* A tenant's rules leave the cache: what was read for them goes too. */
static void
forget_tenant(void *entry)
{
	MemoryContextDelete(((TenantRules *) entry)->cxt);
}

/*
 * Reads the cache key; drops every tenant's rules when the merchant's
 * tables changed, the rules of the tenants refreshed since when the models
 * did.  Returns the key, for the request's other caches
 * (serving_begin_facts).
 */
ServingVersion
serving_check_version(void)
{
	ServingVersion version = serving_read_version();
	bool		isnull;
	Datum		d;
	int			i;

	if (cache.valid && cache.version.state_rel == version.state_rel &&
		cache.version.rules == version.rules)
	{
		if (cache.version.models != version.models)
		{
			/*
			 * the rules of the tenants refreshed since go (what they derive
			 * from the models: bestsellers, the gap fillers' candidates, the
			 * pinned offers' stock), the others' stay
			 */
			cache.valid = false;
			serving_forget_refreshed(cache.tenants, &cache.tenant_versions, cache.cxt, forget_tenant);
			cache.version.models = version.models;
			cache.valid = true;
		}
		check_rules_readable();
		return version;
	}

	cache.valid = false;
	cache.tenants = serving_cache_table(&cache.cxt, "upsell serving rules", sizeof(int64),
										sizeof(TenantRules), 16);
	serving_use_spi();
	if (SPI_execute(serving_qualify("SELECT (SELECT o.tenant_id IS NOT NULL FROM @.order_source o)"),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read upsell.order_source");
	d = serving_col(0, 1, &isnull);
	cache.per_tenant = isnull ? -1 : DatumGetBool(d) ? 1 : 0;
	/*
	 * A registered column renamed, dropped or retyped is not checked here:
	 * the stages read the models, not the shop's tables, and serve what the
	 * last refresh built; the next refresh names the column and fails,
	 * leaving those models in place.  (Until 1.6 the check ran here too, and
	 * one migration of the shop's table failed every page.)
	 */
	for (i = 0; i < lengthof(rule_relations); i++)
		cache.rule_rels[i] = get_relname_relid(rule_relations[i], serving.nsp);
	cache.tenant_versions = serving_read_tenant_versions(cache.cxt);
	cache.version = version;
	cache.valid = true;
	check_rules_readable();
	return version;
}

/*
 * Raises unless the session may serve the tenant: a session bound to a
 * tenant (upsell.tenant_id) serves only that one.
 */
void
serving_check_bound(int64 tenant_id)
{
	int64		bound;

	if (upsell_session_tenant(&bound) && tenant_id != bound)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("tenant_id " INT64_FORMAT " given, but the session is bound to tenant " INT64_FORMAT,
						tenant_id, bound),
				 errhint("RESET upsell.tenant_id, or SET it to the tenant to serve.")));
}

/*
 * The tenant a request is about, as upsell._tenant() resolves it: the
 * argument, else the tenant bound to the session.
 */
int64
serving_resolve_tenant(bool tenant_null, int64 tenant_id)
{
	int64		bound;

	if (!tenant_null)
		serving_check_bound(tenant_id);
	else if (upsell_session_tenant(&bound))
	{
		tenant_null = false;
		tenant_id = bound;
	}
	if (cache.per_tenant < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no order lines are registered"),
				 errhint("Call upsell.register_orders() first.")));
	if (cache.per_tenant == 1 && tenant_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id is required: order lines are registered per tenant"),
				 errhint("Pass tenant_id, or bind the session: SET upsell.tenant_id = ...")));
	if (cache.per_tenant == 0 && !tenant_null && tenant_id != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_id " INT64_FORMAT " given, but order lines are registered without a tenant column", tenant_id),
				 errhint("Pass NULL, or register the orders with tenant_id => 'column'.")));
	return tenant_null ? 0 : tenant_id;
}

static void
load_settings(TenantRules *r)
{
	uint64		n,
				i;
	int			s,
				t;

	for (s = 0; s < NSTAGES; s++)
	{
		r->stage[s].max_offers = DEFAULT_MAX_OFFERS;
		for (t = 0; t < OFFER_NTYPES; t++)
			r->stage[s].weight[t] = offer_default_weights[t];
	}
	/*
	 * The tenant's own rows only: tenant 0 is a shop like any other where a
	 * tenant column is registered, so its settings are not a default of the
	 * others (every other rule table is read the same way).
	 */
	n = serving_tenant_query("SELECT s.stage, s.max_offers, w.key, w.value::pg_catalog.float8 "
				   "FROM @.stage_settings s "
				   "LEFT JOIN LATERAL pg_catalog.jsonb_each_text(s.type_weights) w ON true "
				   "WHERE s.tenant_id" EQ "$1", r->tenant_id);
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *name = serving_col_text(i, 1);
		Stage		stage = serving_stage_of(name);
		char	   *key = serving_col_text(i, 3);
		Datum		w = serving_col(i, 4, &isnull);

		r->stage[stage].max_offers = DatumGetInt32(serving_col(i, 2, &isnull));
		if (key && !isnull && (t = offer_type_of(key)) >= 0)
			r->stage[stage].weight[t] = DatumGetFloat8(w);
	}
}

static void
load_pinned(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;

	/*
	 * Every product known and in stock: an array test with the tenant as
	 * $1, not a join of unnest() to product_model on f.tenant_id, which
	 * Citus 12.1 cannot plan when the function runs on a tenant's worker
	 * (product_ids has no NULL element, see the table's CHECK).
	 */
	n = serving_tenant_query("SELECT f.offer_id, f.stage, f.trigger_product_id, f.trigger_category, "
				   "       f.min_cart_value, f.active_from, f.active_to, f.product_ids, f.discount, "
				   "       f.priority, coalesce(f.reason, 'merchant offer'), "
				   "       f.product_ids OPERATOR(pg_catalog.<@) ARRAY(SELECT m.product_id FROM @.product_model m "
				   "                   WHERE m.tenant_id" EQ "$1 AND m.product_id" EQ "ANY (f.product_ids) "
				   "                     AND m.in_stock) "
				   "FROM @.offers f WHERE f.tenant_id" EQ "$1 ORDER BY f.offer_id", r->tenant_id);
	r->pinned = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(PinnedOffer));
	for (i = 0; i < n; i++)
	{
		PinnedOffer *p = &r->pinned[i];
		bool		isnull;
		Datum		d;
		MemoryContext old;

		p->offer_id = DatumGetInt64(serving_col(i, 1, &isnull));
		p->stage = serving_stage_of(serving_col_text(i, 2));
		p->trigger = TRIGGER_ALWAYS;
		d = serving_col(i, 3, &isnull);
		if (!isnull)
		{
			p->trigger = TRIGGER_PRODUCT;
			p->trigger_product = DatumGetInt64(d);
		}
		old = MemoryContextSwitchTo(cxt);
		p->trigger_category = serving_col_text(i, 4);
		if (p->trigger_category)
			p->trigger = TRIGGER_CATEGORY;
		d = serving_col(i, 5, &isnull);
		if (!isnull)
		{
			p->trigger = TRIGGER_CART_VALUE;
			p->min_cart_value = DatumGetNumericCopy(d);
		}
		d = serving_col(i, 6, &isnull);
		if ((p->has_from = !isnull))
			p->active_from = DatumGetTimestampTz(d);
		d = serving_col(i, 7, &isnull);
		if ((p->has_to = !isnull))
			p->active_to = DatumGetTimestampTz(d);
		p->ids = upsell_int8_elems(DatumGetArrayTypeP(serving_col(i, 8, &isnull)), &p->nids);
		p->discount = DatumGetNumericCopy(serving_col(i, 9, &isnull));
		p->priority = (double) DatumGetInt32(serving_col(i, 10, &isnull));
		p->reason = serving_col_text(i, 11);
		p->in_stock = DatumGetBool(serving_col(i, 12, &isnull));
		MemoryContextSwitchTo(old);
	}
	r->npinned = (int) n;
}

static void
load_exclusions(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	int			nx = 0,
				np = 0;

	/* a category's exclusion is one of each of its products */
	n = serving_tenant_query("SELECT e.product_id, e.with_product_id FROM @.exclusions e "
				   "WHERE e.tenant_id" EQ "$1 AND e.product_id IS NOT NULL "
				   "UNION ALL "
				   "SELECT m.product_id, NULL FROM @.exclusions e "
				   "JOIN @.product_model m ON m.tenant_id" EQ "e.tenant_id AND m.category" EQ "e.category "
				   "WHERE e.tenant_id" EQ "$1", r->tenant_id);
	r->excluded = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	r->pair_product = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	r->pair_with = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(serving_col(i, 1, &isnull));
		Datum		with = serving_col(i, 2, &isnull);

		if (isnull)
			r->excluded[nx++] = id;
		else
		{
			r->pair_product[np] = id;
			r->pair_with[np++] = DatumGetInt64(with);
		}
	}
	r->nexcluded = serving_sort_unique(r->excluded, nx);
	r->npairs = np;
}

static int
product_tier_cmp(const void *a, const void *b)
{
	const VolumeTier *x = a,
			   *y = b;

	if (x->product_id != y->product_id)
		return x->product_id < y->product_id ? -1 : 1;
	return (x->min_quantity > y->min_quantity) - (x->min_quantity < y->min_quantity);
}

static int
category_tier_cmp(const void *a, const void *b)
{
	const VolumeTier *x = a,
			   *y = b;
	int			c = strcmp(x->category, y->category);

	if (c != 0)
		return c;
	return (x->min_quantity > y->min_quantity) - (x->min_quantity < y->min_quantity);
}

/* What the cart needs besides: thresholds, their candidates' build, tiers. */
static void
load_cart_rules(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	bool		isnull;

	n = serving_tenant_query("SELECT t.threshold_id, t.amount, t.currency, t.active_from, t.active_to, t.reward "
				   "FROM @.thresholds t WHERE t.tenant_id" EQ "$1 ORDER BY t.amount, t.threshold_id",
				   r->tenant_id);
	r->thresholds = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(Threshold));
	for (i = 0; i < n; i++)
	{
		Threshold  *t = &r->thresholds[i];
		Datum		d;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		t->threshold_id = DatumGetInt64(serving_col(i, 1, &isnull));
		t->amount = DatumGetNumericCopy(serving_col(i, 2, &isnull));
		t->currency = serving_col_text(i, 3);
		d = serving_col(i, 4, &isnull);
		if ((t->has_from = !isnull))
			t->active_from = DatumGetTimestampTz(d);
		d = serving_col(i, 5, &isnull);
		if ((t->has_to = !isnull))
			t->active_to = DatumGetTimestampTz(d);
		t->reward = serving_col_text(i, 6);
		MemoryContextSwitchTo(old);
	}
	r->nthresholds = (int) n;

	n = serving_tenant_query("SELECT c.built_at FROM @.threshold_candidates c WHERE c.tenant_id" EQ "$1",
				   r->tenant_id);
	r->has_candidates = n > 0;
	if (n > 0)
		r->candidates_built_at = DatumGetTimestampTz(serving_col(0, 1, &isnull));

	/*
	 * the products a tier may price (as of the refresh, as _tier_offers
	 * reads them): a cart line's, a gap filler's or a next size's tiers are
	 * read only for them, so a shop without tiers (none listed) reads none
	 */
	n = serving_tenant_query("SELECT v.product_id FROM @.volume_tiers v "
				   "WHERE v.tenant_id" EQ "$1 AND v.product_id IS NOT NULL "
				   "UNION ALL "
				   "SELECT m.product_id FROM @.volume_tiers v "
				   "JOIN @.product_model m ON m.tenant_id" EQ "v.tenant_id AND m.category" EQ "v.category "
				   "WHERE v.tenant_id" EQ "$1 AND v.product_id IS NULL", r->tenant_id);
	r->tiered = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	for (i = 0; i < n; i++)
		r->tiered[i] = DatumGetInt64(serving_col(i, 1, &isnull));
	r->ntiered = serving_sort_unique(r->tiered, (int) n);

	/* the tiers themselves, for serving_quote_tiers */
	n = serving_tenant_query("SELECT v.product_id, v.category, v.min_quantity, v.unit_price, v.percent_off "
				   "FROM @.volume_tiers v WHERE v.tenant_id" EQ "$1", r->tenant_id);
	r->product_tiers = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(VolumeTier));
	r->category_tiers = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(VolumeTier));
	for (i = 0; i < n; i++)
	{
		Datum		product = serving_col(i, 1, &isnull);
		VolumeTier *t = isnull ? &r->category_tiers[r->ncategory_tiers++]
			: &r->product_tiers[r->nproduct_tiers++];
		Datum		d;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		t->product_id = isnull ? 0 : DatumGetInt64(product);
		t->category = serving_col_text(i, 2);
		t->min_quantity = DatumGetInt32(serving_col(i, 3, &isnull));
		d = serving_col(i, 4, &isnull);
		t->unit_price = isnull ? NULL : DatumGetNumericCopy(d);
		d = serving_col(i, 5, &isnull);
		t->percent_off = isnull ? NULL : DatumGetNumericCopy(d);
		MemoryContextSwitchTo(old);
	}
	qsort(r->product_tiers, r->nproduct_tiers, sizeof(VolumeTier), product_tier_cmp);
	qsort(r->category_tiers, r->ncategory_tiers, sizeof(VolumeTier), category_tier_cmp);
}

static void
load_popular(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	bool		isnull;

	/* (the view numbers the ranks along an index: the scan stops here) */
	n = serving_tenant_query("SELECT p.product_id, p.popularity_rank, p.category FROM @.product_popularity p "
				   "WHERE p.tenant_id" EQ "$1 AND p.in_stock LIMIT " CppAsString2(POPULAR), r->tenant_id);
	for (i = 0; i < n; i++)
	{
		char	   *category = serving_col_text(i, 3);

		r->popular[i] = DatumGetInt64(serving_col(i, 1, &isnull));
		r->popular_rank[i] = DatumGetInt64(serving_col(i, 2, &isnull));
		r->popular_category[i] = category ? MemoryContextStrdup(cxt, category) : NULL;
	}
	r->npopular = (int) n;
}

/* The rules of a tenant, read when the cache has none. */
TenantRules *
serving_tenant_rules(int64 tenant_id)
{
	bool		found;
	TenantRules *r;
	MemoryContext cxt;

	r = hash_search(cache.tenants, &tenant_id, HASH_FIND, NULL);
	if (r)
		return r;
	/* read everything before entering it: an error leaves no half entry */
	cxt = AllocSetContextCreate(cache.cxt, "upsell tenant rules", ALLOCSET_SMALL_SIZES);
	PG_TRY();
	{
		TenantRules tmp;

		memset(&tmp, 0, sizeof(tmp));
		tmp.tenant_id = tenant_id;
		tmp.cxt = cxt;
		load_settings(&tmp);
		load_pinned(&tmp, cxt);
		load_exclusions(&tmp, cxt);
		load_cart_rules(&tmp, cxt);
		load_popular(&tmp, cxt);
		r = hash_search(cache.tenants, &tenant_id, HASH_ENTER, &found);
		*r = tmp;
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return r;
}
