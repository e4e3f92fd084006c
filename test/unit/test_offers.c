/*
 * test_offers.c
 *		Unit tests of the funnel merge (src/core/offers.c): each rule of
 *		offers.h on a hand-made example, then random candidate lists against
 *		a direct reference (sort everything by the rules, walk once).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "offers.h"
#include "unit.h"

static MergeRules
rules(int max_offers, const int64_t *context, size_t ncontext)
{
	MergeRules	r;
	int			t;

	r.max_offers = max_offers;
	r.allowed = OFFER_ALL_TYPES;
	for (t = 0; t < OFFER_NTYPES; t++)
		r.weight[t] = offer_default_weights[t];
	r.context = context;
	r.ncontext = ncontext;
	return r;
}

static OfferCandidate
offer(OfferType type, const int64_t *ids, int nids, double score)
{
	OfferCandidate c;

	memset(&c, 0, sizeof c);
	c.type = type;
	c.ids = ids;
	c.nids = nids;
	c.score = score;
	c.showable = true;
	return c;
}

UNIT_TEST(offers_type_names_are_sorted_and_known)
{
	int			t;

	for (t = 1; t < OFFER_NTYPES; t++)
		CHECK(strcmp(offer_type_names[t - 1], offer_type_names[t]) < 0);
	CHECK_EQ_INT(offer_type_of("gap_filler"), OFFER_GAP_FILLER);
	CHECK_EQ_INT(offer_type_of("pinned"), OFFER_PINNED);
	CHECK_EQ_INT(offer_type_of("nonsense"), -1);
}

UNIT_TEST(offers_interleave_by_weighted_relative_score)
{
	static const int64_t a[] = {10}, b[] = {11}, c[] = {12}, u[] = {20}, v[] = {21};
	OfferCandidate cand[5];
	MergeRules	r = rules(6, NULL, 0);
	int			out[6];
	int			n;

	/* complements score 0.5 and 0.25 and 0.1, upgrades 40 and 10 */
	cand[0] = offer(OFFER_COMPLEMENT, a, 1, 0.5);
	cand[1] = offer(OFFER_COMPLEMENT, b, 1, 0.25);
	cand[2] = offer(OFFER_COMPLEMENT, c, 1, 0.1);
	cand[3] = offer(OFFER_UPGRADE, u, 1, 40);
	cand[4] = offer(OFFER_UPGRADE, v, 1, 10);
	n = offers_merge(cand, 5, &r, out);
	/* 1 (a), 0.8 (u), 0.5 (b), 0.2 (c), 0.2 (v): tie by first product id */
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_INT(out[0], 0);
	CHECK_EQ_INT(out[1], 3);
	CHECK_EQ_INT(out[2], 1);
	CHECK_EQ_INT(out[3], 2);
	CHECK_EQ_INT(out[4], 4);

	/* a weight of 2 puts the upgrades first; max_offers cuts */
	r.weight[OFFER_UPGRADE] = 2;
	r.max_offers = 2;
	n = offers_merge(cand, 5, &r, out);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(out[0], 3);
	CHECK_EQ_INT(out[1], 0);

	/* a weight of 0 puts the complements last, still best first (not by id) */
	r.weight[OFFER_UPGRADE] = 0.8;
	r.weight[OFFER_COMPLEMENT] = 0;
	r.max_offers = 6;
	cand[0].ids = c;
	cand[2].ids = a;
	n = offers_merge(cand, 5, &r, out);
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_INT(out[0], 3);
	CHECK_EQ_INT(out[1], 4);
	CHECK_EQ_INT(out[2], 0);
	CHECK_EQ_INT(out[3], 1);
	CHECK_EQ_INT(out[4], 2);
}

UNIT_TEST(offers_pinned_first_by_priority_then_id)
{
	static const int64_t a[] = {10}, p[] = {30}, q[] = {31}, s[] = {32};
	OfferCandidate cand[4];
	MergeRules	r = rules(6, NULL, 0);
	int			out[6];
	int			n;

	cand[0] = offer(OFFER_COMPLEMENT, a, 1, 0.9);
	cand[1] = offer(OFFER_PINNED, p, 1, 0);
	cand[1].priority = 1;
	cand[1].offer_id = 7;
	cand[2] = offer(OFFER_PINNED, q, 1, 0);
	cand[2].priority = 5;
	cand[2].offer_id = 9;
	cand[3] = offer(OFFER_PINNED, s, 1, 0);
	cand[3].priority = 5;
	cand[3].offer_id = 8;
	n = offers_merge(cand, 4, &r, out);
	CHECK_EQ_INT(n, 4);
	CHECK_EQ_INT(out[0], 3);	/* priority 5, offer 8 */
	CHECK_EQ_INT(out[1], 2);	/* priority 5, offer 9 */
	CHECK_EQ_INT(out[2], 1);
	CHECK_EQ_INT(out[3], 0);

	/* a variant without pinned offers shows only the complement */
	r.allowed = 1u << OFFER_COMPLEMENT;
	n = offers_merge(cand, 4, &r, out);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(out[0], 0);
	r.allowed = 0;
	CHECK_EQ_INT(offers_merge(cand, 4, &r, out), 0);
}

UNIT_TEST(offers_context_stock_and_one_offer_per_product)
{
	static const int64_t ctx[] = {1, 5};
	static const int64_t own[] = {5}, other[] = {6}, bundle[] = {1, 6}, bundle2[] = {1, 7},
				more[] = {5}, gone[] = {8};
	OfferCandidate cand[6];
	MergeRules	r = rules(6, ctx, 2);
	int			out[6];
	int			n;

	cand[0] = offer(OFFER_COMPLEMENT, own, 1, 0.9);	/* a context product */
	cand[1] = offer(OFFER_COMPLEMENT, other, 1, 0.5);
	cand[2] = offer(OFFER_BUNDLE, bundle, 2, 3);	/* shares 6 with cand 1 */
	cand[3] = offer(OFFER_BUNDLE, bundle2, 2, 2);	/* the page's product and 7 */
	cand[4] = offer(OFFER_QUANTITY_TIER, more, 1, 0.1);	/* more of a cart line */
	cand[5] = offer(OFFER_COMPLEMENT, gone, 1, 1.0);
	cand[5].showable = false;
	n = offers_merge(cand, 6, &r, out);
	/*
	 * complement 6: 0.5/0.5 * 1 = 1; bundle 1+6: 0.9 but clashes on 6; the
	 * tier 0.7; bundle 1+7: 0.6 (the context's 1 does not clash with the tier)
	 */
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(out[0], 1);
	CHECK_EQ_INT(out[1], 4);
	CHECK_EQ_INT(out[2], 3);
}

UNIT_TEST(offers_zero_best_sorts_last_and_negative_scores_drop)
{
	static const int64_t a[] = {1}, b[] = {2}, c[] = {3};
	OfferCandidate cand[3];
	MergeRules	r = rules(6, NULL, 0);
	int			out[6];

	cand[0] = offer(OFFER_UPGRADE, a, 1, 0);
	cand[1] = offer(OFFER_COMPLEMENT, b, 1, 0.01);
	cand[2] = offer(OFFER_COMPLEMENT, c, 1, -1);
	CHECK_EQ_INT(offers_merge(cand, 3, &r, out), 2);
	CHECK_EQ_INT(out[0], 1);
	CHECK_EQ_INT(out[1], 0);
}

/* ---- random lists against a reference ------------------------------------ */

static uint64_t rng = 88172645463325252ULL;

static uint64_t
next_rand(void)
{
	return unit_xorshift(&rng);
}

/* The reference orders by the rules directly: is x better than y? */
static bool
ref_better(const OfferCandidate *x, double kx, bool hx, double rx,
		   const OfferCandidate *y, double ky, bool hy, double ry)
{
	int			tx = x->type == OFFER_PINNED ? 0 : 1;
	int			ty = y->type == OFFER_PINNED ? 0 : 1;
	int64_t		bx,
				by;
	int			i,
				r;

	if (tx != ty)
		return tx < ty;
	if (hx != hy)
		return hx;
	if (hx && kx != ky)
		return kx > ky;
	/* a type of weight 0: its offers best first all the same */
	if (hx && tx == 1 && kx == 0 && rx != ry)
		return rx > ry;
	bx = tx == 0 ? x->offer_id : x->ids[0];
	by = ty == 0 ? y->offer_id : y->ids[0];
	if (bx != by)
		return bx < by;
	r = strcmp(offer_type_names[x->type], offer_type_names[y->type]);
	if (r != 0)
		return r < 0;
	for (i = 0; i < x->nids && i < y->nids; i++)
		if (x->ids[i] != y->ids[i])
			return x->ids[i] < y->ids[i];
	return x->nids < y->nids;
}

UNIT_TEST(offers_random_lists_match_the_reference)
{
	enum
	{
		N = 40
	};
	static int64_t ids[N][3];
	OfferCandidate cand[N];
	int			round;

	for (round = 0; round < 2000; round++)
	{
		int64_t		ctx[3];
		MergeRules	r;
		int			n = 1 + (int) (next_rand() % N);
		int			out[8],
					want[8];
		int			nout,
					nwant = 0;
		bool		used[N] = {false};
		double		best[OFFER_NTYPES];
		double		key[N];
		double		rel[N];
		bool		has[N];
		int64_t		shown[64];
		int			nshown = 0;
		int			i,
					t;

		ctx[0] = 1 + next_rand() % 4;
		ctx[1] = ctx[0] + 1 + next_rand() % 4;
		ctx[2] = ctx[1] + 1 + next_rand() % 4;
		r = rules(1 + (int) (next_rand() % 8), ctx, next_rand() % 4);
		r.allowed = next_rand() % 4 == 0 ? (uint32_t) (next_rand() & OFFER_ALL_TYPES) : OFFER_ALL_TYPES;
		/* in a round of four, a type of weight 0 */
		if (next_rand() % 4 == 0)
			r.weight[next_rand() % OFFER_NTYPES] = 0;
		for (i = 0; i < n; i++)
		{
			int			k = 1 + (int) (next_rand() % 3);
			int			j;

			for (j = 0; j < k; j++)
				ids[i][j] = 1 + (int64_t) (next_rand() % 15);
			cand[i] = offer((OfferType) (next_rand() % OFFER_NTYPES), ids[i], k,
							(double) (next_rand() % 5) / 4.0);
			cand[i].priority = (double) (next_rand() % 3);
			cand[i].offer_id = (int64_t) (next_rand() % 5);
			cand[i].showable = next_rand() % 8 != 0;
		}
		nout = offers_merge(cand, n, &r, out);

		/* reference: filter, key, then repeated selection of the best */
		for (t = 0; t < OFFER_NTYPES; t++)
			best[t] = -1;
		for (i = 0; i < n; i++)
		{
			const OfferCandidate *x = &cand[i];
			bool		ok = x->showable && (r.allowed & (1u << x->type));
			int			j;
			size_t		q;

			for (j = 0; j < x->nids && ok; j++)
				for (q = 0; q < r.ncontext; q++)
					if (x->ids[j] == ctx[q] &&
						(x->type == OFFER_PINNED || x->type == OFFER_COMPLEMENT ||
						 x->type == OFFER_UPGRADE || x->type == OFFER_DOWNSELL ||
						 x->type == OFFER_RESTOCK))
						ok = false;
			used[i] = !ok;
			if (ok && x->type != OFFER_PINNED && x->score > best[x->type])
				best[x->type] = x->score;
		}
		for (i = 0; i < n; i++)
		{
			const OfferCandidate *x = &cand[i];

			if (x->type == OFFER_PINNED)
			{
				has[i] = true;
				key[i] = x->priority;
				rel[i] = 0;
			}
			else
			{
				has[i] = best[x->type] > 0;
				rel[i] = has[i] ? x->score / best[x->type] : 0;
				key[i] = r.weight[x->type] * rel[i];
			}
		}
		for (;;)
		{
			int			pick = -1;
			bool		clash = false;
			int			j,
						s;

			if (nwant == r.max_offers)
				break;
			for (i = 0; i < n; i++)
				if (!used[i] && (pick < 0 || ref_better(&cand[i], key[i], has[i], rel[i],
														 &cand[pick], key[pick], has[pick], rel[pick])))
					pick = i;
			if (pick < 0)
				break;
			used[pick] = true;
			for (j = 0; j < cand[pick].nids; j++)
			{
				bool		in_ctx = false;
				size_t		q;

				for (q = 0; q < r.ncontext; q++)
					in_ctx |= cand[pick].ids[j] == ctx[q];
				if (cand[pick].type == OFFER_BUNDLE && in_ctx)
					continue;
				for (s = 0; s < nshown; s++)
					clash |= shown[s] == cand[pick].ids[j];
			}
			if (clash)
				continue;
			for (j = 0; j < cand[pick].nids; j++)
			{
				bool		in_ctx = false;
				size_t		q;

				for (q = 0; q < r.ncontext; q++)
					in_ctx |= cand[pick].ids[j] == ctx[q];
				if (!(cand[pick].type == OFFER_BUNDLE && in_ctx))
					shown[nshown++] = cand[pick].ids[j];
			}
			want[nwant++] = pick;
		}

		CHECK_EQ_INT(nout, nwant);
		for (i = 0; i < nout && i < nwant; i++)
			CHECK_EQ_INT(out[i], want[i]);
		if (nout != nwant)
			break;
	}
}
