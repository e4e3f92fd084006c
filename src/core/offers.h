/*
 * offers.h
 *		The merge of a funnel stage: candidate offers of every tactic in, the
 *		ranked list a page shows out.
 *
 * Rules, in order (README "The funnel"):
 *	1. an offer the experiment variant does not show is dropped;
 *	2. an offer with a product that may not be shown (out of stock, excluded
 *	   by the merchant) is dropped;
 *	3. an offer of a context product (the page's product, a cart line, the
 *	   order's products) is dropped, except a quantity tier or subscription
 *	   (more of it) and a bundle (it and others);
 *	4. pinned merchant offers come first, by priority desc, then offer id;
 *	   the tactics' offers follow by weight * score / (best score of the
 *	   type among what may be shown): scores are comparable within a type
 *	   only, so each type's best gets its weight and the types interleave
 *	   instead of queueing; ties by first product id, type name, product ids;
 *	5. one offer per product: an offer sharing a product with an offer
 *	   before it is skipped (a bundle's context products do not count);
 *	6. at most max_offers.
 *
 * Plain C without server headers (see ups_host.h), so that the unit tests
 * check it directly.
 */
#ifndef OFFERS_H
#define OFFERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The offer types, in the order of their names (ties are broken by name). */
typedef enum OfferType
{
	OFFER_BUNDLE,
	OFFER_COMPLEMENT,
	OFFER_DOWNSELL,
	OFFER_GAP_FILLER,
	OFFER_PINNED,
	OFFER_QUANTITY_TIER,
	OFFER_RESTOCK,
	OFFER_SUBSCRIPTION,
	OFFER_UPGRADE,
	OFFER_NTYPES
} OfferType;

#define OFFER_ALL_TYPES		((1u << OFFER_NTYPES) - 1)

extern const char *const offer_type_names[OFFER_NTYPES];

/* The built-in weight of each type (complements lead, others just below). */
extern const double offer_default_weights[OFFER_NTYPES];

/* The type of a name, -1 when it is none. */
extern int	offer_type_of(const char *name);

typedef struct OfferCandidate
{
	OfferType	type;
	const int64_t *ids;			/* the product(s) offered, nids >= 1 */
	int			nids;
	double		score;			/* tactics: >= 0; pinned: unused */
	double		priority;		/* pinned only */
	int64_t		offer_id;		/* pinned only: tie break */
	bool		showable;		/* every product in stock and not excluded */
} OfferCandidate;

typedef struct MergeRules
{
	int			max_offers;
	uint32_t	allowed;		/* bit per OfferType */
	double		weight[OFFER_NTYPES];
	const int64_t *context;		/* ascending */
	size_t		ncontext;
} MergeRules;

/*
 * Ranks the candidates; writes the chosen ones' indexes into out (room for
 * max_offers), best first, and returns how many.  Reorders nothing in c.
 */
extern int	offers_merge(const OfferCandidate *c, int n, const MergeRules *rules, int *out);

/* Whether value is in the ascending array a[0 .. n). */
extern bool offers_contains(const int64_t *a, size_t n, int64_t value);

#endif							/* OFFERS_H */
