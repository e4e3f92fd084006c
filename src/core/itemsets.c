/*
 * itemsets.c
 *		Frequent itemsets by FP-growth, and rules from them (see itemsets.h).
 *
 * The FP-tree is built without child lists: the orders (as rank sequences,
 * most frequent product first) are sorted, so each one shares with the tree
 * exactly the prefix it shares with the previous order, and the path of the
 * previous order is all the lookup needed.  Conditional trees are built the
 * same way from their pattern bases, keeping the global rank order.
 */
#include "itemsets.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sorting.h"
#include "ups_host.h"

#define NO_ITEM		UINT32_MAX

/*
 * A node's item and parent, what the walks up the tree read, are kept apart
 * from its count and its next node of the same item: three times as many
 * fit in a cache line, and the walks were most of the mining.
 */
typedef struct Node
{
	uint32_t	item;			/* local item index in its tree */
	uint32_t	parent;			/* 0 = root */
} Node;

typedef struct Tree
{
	Node	   *nodes;			/* nodes[0] is the root */
	uint32_t   *next;			/* next node of the same item, 0 = end */
	int64_t    *ncount;			/* orders through each node */
	uint32_t	nnodes;
	uint32_t	nitems;
	uint32_t   *head;			/* first node of each item */
	int64_t    *count;			/* orders of each item in this tree */
	uint32_t   *global;			/* local item -> global rank */
} Tree;

typedef struct Tx
{
	const uint32_t *items;		/* ascending */
	uint32_t	len;
	int64_t		weight;
} Tx;

typedef struct Miner
{
	size_t		used;
	size_t		peak;
	size_t		limit;
	bool		failed;
	int64_t		min_count;
	int			max_size;
	uint32_t   *prefix;
	Itemsets   *out;
	size_t		members_cap;
	size_t		sets_cap;
	size_t		longest;		/* longest transaction: deepest path */
	uint32_t   *walk;			/* the paths of one item, see mine() */
	size_t		walk_cap;
} Miner;

/* ------------------------------------------------------------------------
 * Memory charged against the limit
 * ------------------------------------------------------------------------
 */

static bool
charge(Miner *m, size_t size)
{
	if (m->failed)
		return false;
	if (m->limit && (size > m->limit || m->used > m->limit - size))
	{
		m->failed = true;
		return false;
	}
	m->used += size;
	if (m->used > m->peak)
		m->peak = m->used;
	return true;
}

static void
uncharge(Miner *m, size_t size)
{
	m->used -= size;
}

/* Scratch memory remembers its size in a header so that freeing uncharges it. */
#define HDR 16

static void *
tmp_alloc(Miner *m, size_t size, bool zero)
{
	char	   *p;

	if (!charge(m, size + HDR))
		return NULL;
	p = zero ? ups_alloc0(size + HDR) : ups_alloc(size + HDR);
	*(size_t *) p = size + HDR;
	return p + HDR;
}

static void
tmp_free(Miner *m, void *ptr)
{
	char	   *p;

	if (ptr == NULL)
		return;
	p = (char *) ptr - HDR;
	uncharge(m, *(size_t *) p);
	ups_free(p);
}

static void *
tmp_shrink(Miner *m, void *ptr, size_t size)
{
	char	   *p = (char *) ptr - HDR;
	size_t		old = *(size_t *) p;

	if (size + HDR >= old)
		return ptr;
	p = ups_realloc(p, size + HDR);
	*(size_t *) p = size + HDR;
	uncharge(m, old - size - HDR);
	return p + HDR;
}

/* Room for want entries in the path record (kept from item to item). */
static bool
walk_reserve(Miner *m, size_t want)
{
	size_t		cap;
	uint32_t   *grown;

	if (want <= m->walk_cap)
		return true;
	cap = m->walk_cap ? m->walk_cap : 1024;
	while (cap < want)
		cap *= 2;
	grown = tmp_alloc(m, cap * sizeof(uint32_t), false);
	if (grown == NULL)
		return false;
	if (m->walk_cap)
		memcpy(grown, m->walk, m->walk_cap * sizeof(uint32_t));
	tmp_free(m, m->walk);
	m->walk = grown;
	m->walk_cap = cap;
	return true;
}

/* ------------------------------------------------------------------------
 * Sorting helpers (ups_sort_uint32 for ranks: sorting.c)
 * ------------------------------------------------------------------------
 */

/*
 * Transactions in this order: insertion sort when few, else a merge
 * sort through tmp (n entries) with the comparison inlined; qsort's calls
 * through a pointer and element copies by memcpy were a tenth of a build.
 */
static inline int
tx_order(const Tx *a, const Tx *b)
{
	uint32_t	n = a->len < b->len ? a->len : b->len;
	uint32_t	i;

	for (i = 0; i < n; i++)
		if (a->items[i] != b->items[i])
			return a->items[i] < b->items[i] ? -1 : 1;
	return a->len < b->len ? -1 : (a->len > b->len ? 1 : 0);
}

static void
tx_msort(Tx *txs, Tx *tmp, size_t n)
{
	size_t		i,
				j,
				k,
				half;

	if (n <= 16)
	{
		for (i = 1; i < n; i++)
		{
			Tx			x = txs[i];

			for (j = i; j > 0 && tx_order(&txs[j - 1], &x) > 0; j--)
				txs[j] = txs[j - 1];
			txs[j] = x;
		}
		return;
	}
	half = n / 2;
	tx_msort(txs, tmp, half);
	tx_msort(txs + half, tmp + half, n - half);
	if (tx_order(&txs[half - 1], &txs[half]) <= 0)
		return;					/* already in order */
	for (i = 0, j = half, k = 0; i < half && j < n;)
		tmp[k++] = tx_order(&txs[j], &txs[i]) < 0 ? txs[j++] : txs[i++];
	while (i < half)
		tmp[k++] = txs[i++];
	/* the rest of the second half is in place already */
	memcpy(txs, tmp, k * sizeof(Tx));
}

/*
 * Sorts non-empty transactions over nitems items in tx_order's (lexicographic)
 * order.  Many of them over fewer items: a counting sort by first item
 * (dense ranks), then each bucket, which shares its first item, by merge
 * sort.  False when the scratch memory passes the limit.
 */
static bool
sort_txs(Miner *m, Tx *txs, size_t ntx, uint32_t nitems)
{
	Tx		   *tmp;
	size_t	   *end;
	size_t		i,
				from;
	uint32_t	x;

	if (ntx <= 16)
	{
		tx_msort(txs, NULL, ntx);
		return true;
	}
	tmp = tmp_alloc(m, ntx * sizeof(Tx), false);
	if (m->failed)
		return false;
	if ((size_t) nitems > ntx)
	{
		tx_msort(txs, tmp, ntx);
		tmp_free(m, tmp);
		return true;
	}
	end = tmp_alloc(m, ((size_t) nitems + 1) * sizeof(size_t), true);
	if (m->failed)
	{
		tmp_free(m, tmp);
		return false;
	}
	/* end[x + 1]: transactions starting with x; then starts; then ends */
	for (i = 0; i < ntx; i++)
		end[txs[i].items[0] + 1]++;
	for (x = 0; x < nitems; x++)
		end[x + 1] += end[x];
	for (i = 0; i < ntx; i++)
		tmp[end[txs[i].items[0]]++] = txs[i];
	from = 0;
	for (x = 0; x < nitems; x++)
	{
		if (end[x] - from > 1)
			tx_msort(tmp + from, txs + from, end[x] - from);
		from = end[x];
	}
	memcpy(txs, tmp, ntx * sizeof(Tx));
	tmp_free(m, tmp);
	tmp_free(m, end);
	return true;
}

/* Frequent products by descending count, then product id. */
typedef struct RankEntry
{
	int64_t		id;
	int64_t		count;
	uint32_t	index;
} RankEntry;

static int
rank_cmp(const void *pa, const void *pb)
{
	const RankEntry *a = pa;
	const RankEntry *b = pb;

	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return a->id < b->id ? -1 : (a->id > b->id ? 1 : 0);
}

/* ------------------------------------------------------------------------
 * FP-tree
 * ------------------------------------------------------------------------
 */

static void
tree_free(Miner *m, Tree *t)
{
	tmp_free(m, t->nodes);
	tmp_free(m, t->next);
	tmp_free(m, t->ncount);
	tmp_free(m, t->head);
	tmp_free(m, t->count);
	tmp_free(m, t->global);
	memset(t, 0, sizeof(*t));
}

/*
 * Builds a tree over nitems local items from weighted rank sequences (sorted
 * here).  Takes ownership of global.  False when the memory limit is hit
 * (the tree is then empty).
 */
static bool
tree_build(Miner *m, Tx *txs, size_t ntx, uint32_t nitems, uint32_t *global,
		   Tree *t)
{
	size_t		total = 1;
	uint32_t	maxlen = 0;
	uint32_t   *path;
	const Tx   *prev = NULL;
	size_t		i;

	memset(t, 0, sizeof(*t));
	t->global = global;
	t->nitems = nitems;
	for (i = 0; i < ntx; i++)
	{
		total += txs[i].len;
		if (txs[i].len > maxlen)
			maxlen = txs[i].len;
	}
	if (total >= NO_ITEM)
	{
		m->failed = true;
		tree_free(m, t);
		return false;
	}
	t->nodes = tmp_alloc(m, total * sizeof(Node), false);
	t->next = tmp_alloc(m, total * sizeof(uint32_t), false);
	t->ncount = tmp_alloc(m, total * sizeof(int64_t), false);
	t->head = tmp_alloc(m, (size_t) nitems * sizeof(uint32_t), true);
	t->count = tmp_alloc(m, (size_t) nitems * sizeof(int64_t), true);
	path = tmp_alloc(m, ((size_t) maxlen + 1) * sizeof(uint32_t), false);
	if (m->failed)
	{
		tmp_free(m, path);
		tree_free(m, t);
		return false;
	}

	if (!sort_txs(m, txs, ntx, nitems))
	{
		tmp_free(m, path);
		tree_free(m, t);
		return false;
	}
	t->nodes[0] = (Node)
	{
		NO_ITEM, 0
	};
	t->next[0] = 0;
	t->ncount[0] = 0;
	t->nnodes = 1;
	for (i = 0; i < ntx; i++)
	{
		const Tx   *tx = &txs[i];
		uint32_t	shared = 0;
		uint32_t	parent;
		uint32_t	j;

		if (prev)
			while (shared < prev->len && shared < tx->len &&
				   prev->items[shared] == tx->items[shared])
				shared++;
		for (j = 0; j < shared; j++)
			t->ncount[path[j]] += tx->weight;
		parent = shared ? path[shared - 1] : 0;
		for (j = shared; j < tx->len; j++)
		{
			uint32_t	n = t->nnodes++;
			uint32_t	item = tx->items[j];

			t->nodes[n] = (Node)
			{
				item, parent
			};
			t->next[n] = t->head[item];
			t->ncount[n] = tx->weight;
			t->head[item] = n;
			path[j] = n;
			parent = n;
		}
		for (j = 0; j < tx->len; j++)
			t->count[tx->items[j]] += tx->weight;
		prev = tx;
		if ((i & 0xffff) == 0xffff)
			ups_check_interrupts();
	}
	tmp_free(m, path);
	t->nodes = tmp_shrink(m, t->nodes, (size_t) t->nnodes * sizeof(Node));
	t->next = tmp_shrink(m, t->next, (size_t) t->nnodes * sizeof(uint32_t));
	t->ncount = tmp_shrink(m, t->ncount, (size_t) t->nnodes * sizeof(int64_t));
	return true;
}

/* ------------------------------------------------------------------------
 * Result
 * ------------------------------------------------------------------------
 */

static void
emit(Miner *m, int size, int64_t count)
{
	Itemsets   *out = m->out;
	size_t		start = out->set_start[out->nsets];
	uint32_t   *dst;
	int			i,
				j;

	if (m->failed)
		return;
	if (start + size > m->members_cap)
	{
		size_t		cap = m->members_cap ? m->members_cap * 2 : 1024;

		while (cap < start + size)
			cap *= 2;
		if (!charge(m, (cap - m->members_cap) * sizeof(uint32_t)))
			return;
		out->members = out->members ? ups_realloc(out->members, cap * sizeof(uint32_t))
			: ups_alloc(cap * sizeof(uint32_t));
		m->members_cap = cap;
	}
	if (out->nsets + 1 >= m->sets_cap)
	{
		size_t		cap = m->sets_cap * 2;

		if (!charge(m, (cap - m->sets_cap) * (sizeof(size_t) + sizeof(int64_t))))
			return;
		out->set_start = ups_realloc(out->set_start, cap * sizeof(size_t));
		out->set_counts = ups_realloc(out->set_counts, cap * sizeof(int64_t));
		m->sets_cap = cap;
	}
	/* insertion sort: sets are small */
	dst = out->members + start;
	for (i = 0; i < size; i++)
	{
		uint32_t	v = m->prefix[i];

		for (j = i; j > 0 && dst[j - 1] > v; j--)
			dst[j] = dst[j - 1];
		dst[j] = v;
	}
	out->set_counts[out->nsets] = count;
	out->nsets++;
	out->set_start[out->nsets] = start + size;
}

/* ------------------------------------------------------------------------
 * FP-growth
 * ------------------------------------------------------------------------
 */

/*
 * Mines tree t under the prefix m->prefix[0..depth-1].  The scratch arrays
 * (conditional counts, local index of each item) are allocated once per tree
 * and reset only where a pattern base touched them, so a tree over many
 * items costs in proportion to its paths, not to items squared.
 */
static void
mine(Miner *m, Tree *t, int depth)
{
	int64_t    *cond = NULL;
	uint32_t   *map = NULL;
	uint32_t   *touched = NULL;
	uint32_t	x;

	if (depth + 1 < m->max_size && t->nitems > 1)
	{
		cond = tmp_alloc(m, (size_t) t->nitems * sizeof(int64_t), true);
		map = tmp_alloc(m, (size_t) t->nitems * sizeof(uint32_t), false);
		touched = tmp_alloc(m, (size_t) t->nitems * sizeof(uint32_t), false);
		if (m->failed)
			goto done;
		for (x = 0; x < t->nitems; x++)
			map[x] = NO_ITEM;
	}

	for (x = t->nitems; x-- > 0 && !m->failed;)
	{
		uint32_t   *global;
		uint32_t   *buf;
		Tx		   *txs;
		uint32_t	n,
					p,
					i,
					ntouched = 0,
					nf = 0;
		size_t		npaths = 0,
					total = 0,
					off = 0,
					wpos,
					r;
		bool		record;
		Tree		ct;

		if (t->count[x] < m->min_count)
			continue;
		m->prefix[depth] = t->global[x];
		emit(m, depth + 1, t->count[x]);
		if (depth + 1 >= m->max_size || x == 0)
			continue;
		ups_check_interrupts();

		/*
		 * Conditional counts of the items above x on its paths.  When a
		 * conditional tree follows, the walk also records each path (node,
		 * length, items upwards) so that the pattern base is read from that
		 * record, not from the tree by two more walks.
		 */
		record = depth + 2 < m->max_size;
		wpos = 0;
		for (n = t->head[x]; n; n = t->next[n])
		{
			size_t		rec = wpos;

			if (record)
			{
				if (!walk_reserve(m, wpos + 2 + m->longest))
					break;
				wpos += 2;
			}
			for (p = t->nodes[n].parent; p; p = t->nodes[p].parent)
			{
				uint32_t	item = t->nodes[p].item;

				if (cond[item] == 0)
					touched[ntouched++] = item;
				cond[item] += t->ncount[n];
				if (record)
					m->walk[wpos++] = item;
			}
			if (record)
			{
				m->walk[rec] = n;
				m->walk[rec + 1] = (uint32_t) (wpos - rec - 2);
			}
		}
		if (m->failed)
			break;
		if (ntouched > 32 && (size_t) ntouched * 16 >= t->nitems)
		{
			/* many: read them off in rank order (counts are positive) */
			ntouched = 0;
			for (i = 0; i < t->nitems; i++)
				if (cond[i] != 0)
					touched[ntouched++] = i;
		}
		else
			ups_sort_uint32(touched, ntouched);

		/*
		 * Sets one item longer are the last size: their counts are the
		 * conditional counts, emitted in the order the conditional tree's
		 * mining would emit them (descending rank), without the tree.
		 */
		if (depth + 2 >= m->max_size)
		{
			for (i = ntouched; i-- > 0;)
			{
				uint32_t	item = touched[i];

				if (cond[item] >= m->min_count)
				{
					m->prefix[depth + 1] = t->global[item];
					emit(m, depth + 2, cond[item]);
				}
				cond[item] = 0;
			}
			continue;
		}

		/* local indexes in global rank order */
		for (i = 0; i < ntouched; i++)
			if (cond[touched[i]] >= m->min_count)
				map[touched[i]] = nf++;
		if (nf == 0)
		{
			for (i = 0; i < ntouched; i++)
				cond[touched[i]] = 0;
			continue;
		}

		/* the conditional pattern base, frequent items only */
		for (r = 0; r < wpos; r += 2 + m->walk[r + 1])
		{
			uint32_t	len = 0,
						k;

			for (k = 0; k < m->walk[r + 1]; k++)
				len += map[m->walk[r + 2 + k]] != NO_ITEM;
			if (len > 0)
			{
				npaths++;
				total += len;
			}
		}
		global = tmp_alloc(m, (size_t) nf * sizeof(uint32_t), false);
		buf = tmp_alloc(m, total * sizeof(uint32_t), false);
		txs = tmp_alloc(m, npaths * sizeof(Tx), false);
		if (m->failed)
		{
			tmp_free(m, global);
			tmp_free(m, buf);
			tmp_free(m, txs);
			break;
		}
		for (i = 0; i < ntouched; i++)
			if (map[touched[i]] != NO_ITEM)
				global[map[touched[i]]] = t->global[touched[i]];
		npaths = 0;
		for (r = 0; r < wpos; r += 2 + m->walk[r + 1])
		{
			uint32_t	len = 0,
						pos,
						k;
			const uint32_t *items = m->walk + r + 2;

			for (k = 0; k < m->walk[r + 1]; k++)
				len += map[items[k]] != NO_ITEM;
			if (len == 0)
				continue;
			/* walking up yielded descending items: fill from the end */
			pos = len;
			for (k = 0; k < m->walk[r + 1]; k++)
				if (map[items[k]] != NO_ITEM)
					buf[off + --pos] = map[items[k]];
			txs[npaths++] = (Tx)
			{
				buf + off, len, t->ncount[m->walk[r]]
			};
			off += len;
		}
		for (i = 0; i < ntouched; i++)
		{
			cond[touched[i]] = 0;
			map[touched[i]] = NO_ITEM;
		}
		if (tree_build(m, txs, npaths, nf, global, &ct))
		{
			tmp_free(m, txs);
			tmp_free(m, buf);
			mine(m, &ct, depth + 1);
			tree_free(m, &ct);
		}
		else
		{
			tmp_free(m, txs);
			tmp_free(m, buf);
		}
	}
done:
	tmp_free(m, cond);
	tmp_free(m, map);
	tmp_free(m, touched);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------
 */

int64_t
itemsets_min_count(double min_support, int64_t transactions)
{
	double		c = ceil(min_support * (double) transactions - 1e-9);

	return c < 1 ? 1 : (int64_t) c;
}

int64_t
itemsets_count_orders(CoocLines *lines)
{
	int64_t		n = 0;
	size_t		i;

	cooc_lines_compact(lines);
	for (i = 0; i < lines->n; i++)
		if (i == 0 || lines->lines[i].order_key != lines->lines[i - 1].order_key)
			n++;
	return n;
}

void
itemsets_free(Itemsets *sets)
{
	ups_free(sets->item_ids);
	ups_free(sets->item_counts);
	ups_free(sets->set_start);
	ups_free(sets->members);
	ups_free(sets->set_counts);
	ups_free(sets->hash);
	memset(sets, 0, sizeof(*sets));
}

/* ItemsetParams.free_lines: the caller reads the lines no more */
static void
free_lines(CoocLines *lines)
{
	ups_free(lines->lines);
	lines->lines = NULL;
	lines->n = 0;
	lines->cap = 0;
}

/*
 * Mining starts from the lines sorted by (order, product), distinct.  The
 * products are numbered once (a hash, see cooc_product_numbers), counted,
 * ranked, and the line numbers rewritten in place as ranks (infrequent
 * products dropped), so each order's transaction is a run of that array:
 * no per-order copies, no search per line.  An order with fewer than two
 * frequent products adds nothing to the sets of two and more: it stays out
 * of the tree, whose item counts are then the products' own.
 */
ItemsetStatus
itemsets_mine(CoocLines *lines, const ItemsetParams *params, Itemsets *out)
{
	Miner		m;
	int64_t    *ids = NULL;
	int64_t    *counts = NULL;
	uint32_t   *rank_of = NULL;
	RankEntry  *ranked = NULL;
	uint32_t   *global = NULL;
	uint32_t   *idx = NULL;
	Tx		   *txs = NULL;
	size_t		nprod = 0,
				nfreq = 0,
				ntx = 0,
				nbuf = 0,
				longest = 0,
				i,
				j;
	bool		ids_charged = false;
	Tree		tree;

	memset(out, 0, sizeof(*out));
	memset(&m, 0, sizeof(m));
	m.limit = params->memory_limit;
	m.min_count = params->min_count < 1 ? 1 : params->min_count;
	m.max_size = params->max_size < 1 ? 1 : params->max_size;
	m.out = out;

	out->transactions = itemsets_count_orders(lines);
	if (lines->n >= NO_ITEM)
	{
		m.failed = true;
		goto fail;
	}
	if ((uint64_t) m.min_count > (uint64_t) out->transactions)
	{
		/* nothing can be frequent: no memory needed to find that out */
		if (params->free_lines)
			free_lines(lines);
		return ITEMSETS_OK;
	}

	/* product numbers by line, then their order counts (lines are distinct) */
	idx = tmp_alloc(&m, lines->n * sizeof(uint32_t) + 1, false);
	if (m.failed)
		goto fail;
	ids = cooc_product_numbers(lines, idx, &nprod);
	ids_charged = charge(&m, nprod * sizeof(int64_t) + 1);
	counts = tmp_alloc(&m, nprod * sizeof(int64_t) + 1, true);
	rank_of = tmp_alloc(&m, nprod * sizeof(uint32_t) + 1, false);
	if (m.failed)
		goto fail;
	ups_check_interrupts();
	for (i = 0; i < lines->n; i++)
		counts[idx[i]]++;

	/* frequent products ranked by descending count */
	for (i = 0; i < nprod; i++)
		nfreq += counts[i] >= m.min_count;
	ranked = tmp_alloc(&m, nfreq * sizeof(RankEntry) + 1, false);
	if (!charge(&m, nfreq * 2 * sizeof(int64_t)))
		goto fail;
	out->item_ids = ups_alloc(nfreq * sizeof(int64_t) + 1);
	out->item_counts = ups_alloc(nfreq * sizeof(int64_t) + 1);
	if (m.failed)
		goto fail;
	nfreq = 0;
	for (i = 0; i < nprod; i++)
	{
		rank_of[i] = NO_ITEM;
		if (counts[i] >= m.min_count)
			ranked[nfreq++] = (RankEntry)
		{
			ids[i], counts[i], (uint32_t) i
		};
	}
	qsort(ranked, nfreq, sizeof(RankEntry), rank_cmp);
	for (i = 0; i < nfreq; i++)
	{
		rank_of[ranked[i].index] = (uint32_t) i;
		out->item_ids[i] = ranked[i].id;
		out->item_counts[i] = ranked[i].count;
	}
	out->nitems = (uint32_t) nfreq;
	tmp_free(&m, ranked);
	ranked = NULL;
	for (i = 0; i < lines->n; i++)
		idx[i] = rank_of[idx[i]];
	ups_free(ids);
	uncharge(&m, nprod * sizeof(int64_t) + 1);
	ids = NULL;
	tmp_free(&m, counts);
	tmp_free(&m, rank_of);
	counts = NULL;
	rank_of = NULL;
	ups_check_interrupts();

	/*
	 * The orders as ascending rank sequences of their frequent products,
	 * compacted in place in idx (the write position never passes the read
	 * position); those of two and more become transactions.  Counted first:
	 * at a high min_count few orders hold two frequent products, and an
	 * array for every order (24 bytes each) was most of what a retry at a
	 * higher count could not shed (a refresh retries so when the limit is
	 * hit).
	 */
	for (i = 0; i < lines->n; i = j)
	{
		size_t		frequent = 0;

		for (j = i; j < lines->n && lines->lines[j].order_key == lines->lines[i].order_key; j++)
			frequent += idx[j] != NO_ITEM;
		ntx += frequent >= 2;
	}
	txs = tmp_alloc(&m, ntx * sizeof(Tx) + 1, false);
	if (m.failed)
		goto fail;
	ntx = 0;
	for (i = 0; i < lines->n; i = j)
	{
		size_t		start = nbuf;

		for (j = i; j < lines->n && lines->lines[j].order_key == lines->lines[i].order_key; j++)
			if (idx[j] != NO_ITEM)
				idx[nbuf++] = idx[j];
		if (nbuf - start > longest)
			longest = nbuf - start;
		if (nbuf - start >= 2)
		{
			ups_sort_uint32(idx + start, nbuf - start);
			txs[ntx++] = (Tx)
			{
				idx + start, (uint32_t) (nbuf - start), 1
			};
		}
		else
			nbuf = start;
		if ((ntx & 0xffff) == 0)
			ups_check_interrupts();
	}
	if (params->free_lines)
		free_lines(lines);		/* the orders are in txs now */

	/* result arrays and the prefix of the recursion */
	m.sets_cap = 1024;
	if (!charge(&m, m.sets_cap * (sizeof(size_t) + sizeof(int64_t))))
		goto fail;
	out->set_start = ups_alloc(m.sets_cap * sizeof(size_t));
	out->set_counts = ups_alloc(m.sets_cap * sizeof(int64_t));
	out->set_start[0] = 0;
	m.prefix = tmp_alloc(&m, (longest + 1) * sizeof(uint32_t), false);
	global = tmp_alloc(&m, nfreq * sizeof(uint32_t) + 1, false);
	if (m.failed)
		goto fail;
	for (i = 0; i < nfreq; i++)
		global[i] = (uint32_t) i;
	if (m.max_size > (int) longest + 1)
		m.max_size = (int) longest + 1;
	m.longest = longest;

	if (tree_build(&m, txs, ntx, (uint32_t) nfreq, global, &tree))
	{
		global = NULL;
		tmp_free(&m, txs);
		tmp_free(&m, idx);
		txs = NULL;
		idx = NULL;
		/* the orders left out of the tree count for their products */
		memcpy(tree.count, out->item_counts, nfreq * sizeof(int64_t));
		mine(&m, &tree, 0);
		tree_free(&m, &tree);
	}
	else
		global = NULL;			/* freed with the tree */
	if (m.failed)
		goto fail;
	tmp_free(&m, m.prefix);
	tmp_free(&m, m.walk);
	out->peak_bytes = m.peak;
	return ITEMSETS_OK;

fail:
	if (ids)
	{
		ups_free(ids);
		if (ids_charged)
			uncharge(&m, nprod * sizeof(int64_t) + 1);
	}
	tmp_free(&m, counts);
	tmp_free(&m, rank_of);
	tmp_free(&m, ranked);
	tmp_free(&m, global);
	tmp_free(&m, idx);
	tmp_free(&m, txs);
	tmp_free(&m, m.prefix);
	tmp_free(&m, m.walk);
	itemsets_free(out);
	return ITEMSETS_MEMORY_LIMIT;
}

/* ------------------------------------------------------------------------
 * Lookup and rules
 * ------------------------------------------------------------------------
 */

static uint64_t
set_hash(const uint32_t *ranks, int k)
{
	uint64_t	h = 0x9e3779b97f4a7c15ULL ^ (uint64_t) k;
	int			i;

	for (i = 0; i < k; i++)
	{
		h ^= ranks[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h;
}

static bool
build_index(Itemsets *s, size_t memory_limit)
{
	size_t		cap = 16;
	size_t		i;

	if (s->hash)
		return true;
	while (cap < s->nsets * 2)
		cap *= 2;
	if (memory_limit && cap * sizeof(size_t) > memory_limit)
		return false;
	s->hash = ups_alloc0(cap * sizeof(size_t));
	s->hash_mask = cap - 1;
	for (i = 0; i < s->nsets; i++)
	{
		const uint32_t *r = s->members + s->set_start[i];
		int			k = (int) (s->set_start[i + 1] - s->set_start[i]);
		size_t		h = set_hash(r, k) & s->hash_mask;

		while (s->hash[h])
			h = (h + 1) & s->hash_mask;
		s->hash[h] = i + 1;
	}
	return true;
}

int64_t
itemsets_lookup(Itemsets *s, const uint32_t *ranks, int k)
{
	size_t		h;

	if (!build_index(s, 0))
		return -1;
	h = set_hash(ranks, k) & s->hash_mask;
	while (s->hash[h])
	{
		size_t		i = s->hash[h] - 1;

		if ((int) (s->set_start[i + 1] - s->set_start[i]) == k &&
			memcmp(s->members + s->set_start[i], ranks, k * sizeof(uint32_t)) == 0)
			return s->set_counts[i];
		h = (h + 1) & s->hash_mask;
	}
	return -1;
}

ItemsetStatus
itemsets_rules(Itemsets *s, double min_confidence, int max_consequent,
			   size_t memory_limit, itemset_rule_fn fn, void *arg)
{
	int			longest = 0;
	int		   *comb;
	uint32_t   *ante,
			   *cons;
	size_t		i;

	if (!build_index(s, memory_limit))
		return ITEMSETS_MEMORY_LIMIT;
	for (i = 0; i < s->nsets; i++)
		if ((int) (s->set_start[i + 1] - s->set_start[i]) > longest)
			longest = (int) (s->set_start[i + 1] - s->set_start[i]);
	comb = ups_alloc(sizeof(int) * (longest + 1));
	ante = ups_alloc(sizeof(uint32_t) * (longest + 1));
	cons = ups_alloc(sizeof(uint32_t) * (longest + 1));

	for (i = 0; i < s->nsets; i++)
	{
		const uint32_t *r = s->members + s->set_start[i];
		int			k = (int) (s->set_start[i + 1] - s->set_start[i]);
		int			c;

		if ((i & 0xfff) == 0)
			ups_check_interrupts();
		for (c = 1; c < k && c <= max_consequent; c++)
		{
			int			q;

			for (q = 0; q < c; q++)
				comb[q] = q;
			for (;;)
			{
				int			a = 0,
							b = 0,
							x;
				int64_t		ante_count;

				/* consequent: the members at comb[], antecedent: the rest */
				for (x = 0; x < k; x++)
				{
					if (b < c && comb[b] == x)
						cons[b++] = r[x];
					else
						ante[a++] = r[x];
				}
				ante_count = itemsets_lookup(s, ante, a);
				if (ante_count > 0 &&
					(double) s->set_counts[i] / (double) ante_count >= min_confidence)
				{
					ItemsetRule rule;

					rule.antecedent = ante;
					rule.nantecedent = a;
					rule.consequent = cons;
					rule.nconsequent = c;
					rule.count = s->set_counts[i];
					rule.antecedent_count = ante_count;
					rule.consequent_count = itemsets_lookup(s, cons, c);
					fn(arg, &rule);
				}
				/* next combination of c out of k */
				for (q = c - 1; q >= 0 && comb[q] == k - c + q; q--)
					;
				if (q < 0)
					break;
				comb[q]++;
				for (x = q + 1; x < c; x++)
					comb[x] = comb[x - 1] + 1;
			}
		}
	}
	ups_free(comb);
	ups_free(ante);
	ups_free(cons);
	return ITEMSETS_OK;
}

/* ------------------------------------------------------------------------
 * Best sets per item
 * ------------------------------------------------------------------------
 */

double
itemsets_lift(const Itemsets *s, size_t i)
{
	const uint32_t *r = s->members + s->set_start[i];
	int			k = (int) (s->set_start[i + 1] - s->set_start[i]);
	double		n = (double) s->transactions;
	double		expected = 1.0;
	int			j;

	for (j = 0; j < k; j++)
		expected *= s->item_counts[r[j]] / n;
	return s->set_counts[i] / n / expected;
}

typedef struct TopEntry
{
	double		lift;
	int64_t		count;
	const int64_t *ids;
	uint32_t	size;
	uint32_t	set;
} TopEntry;

static int
top_cmp(const void *pa, const void *pb)
{
	const TopEntry *a = pa;
	const TopEntry *b = pb;
	uint32_t	n = a->size < b->size ? a->size : b->size;
	uint32_t	i;

	if (a->lift != b->lift)
		return a->lift > b->lift ? -1 : 1;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	for (i = 0; i < n; i++)
		if (a->ids[i] != b->ids[i])
			return a->ids[i] < b->ids[i] ? -1 : 1;
	return a->size < b->size ? -1 : (a->size > b->size ? 1 : 0);
}

void
itemsets_top_per_item(const Itemsets *s, int min_size, double min_lift, int k,
					  itemset_top_fn fn, void *arg)
{
	size_t		nmembers = s->nsets ? s->set_start[s->nsets] : 0;
	int64_t    *ids = ups_alloc(nmembers * sizeof(int64_t) + 1);
	double	   *lift = ups_alloc(s->nsets * sizeof(double) + 1);
	size_t	   *start = ups_alloc0(((size_t) s->nitems + 1) * sizeof(size_t));
	uint32_t   *of_item;
	TopEntry   *entries;
	size_t		most = 0,
				i,
				j;
	uint32_t	x;

	/* the sets that qualify: lift, sorted ids, and how many per item */
	for (i = 0; i < s->nsets; i++)
	{
		size_t		from = s->set_start[i],
					to = s->set_start[i + 1];

		lift[i] = 0;
		if (to - from < (size_t) (min_size < 1 ? 1 : min_size))
			continue;
		lift[i] = itemsets_lift(s, i);
		if (!(lift[i] > min_lift))
			continue;
		for (j = from; j < to; j++)
		{
			int64_t		id = s->item_ids[s->members[j]];
			size_t		q = j;

			while (q > from && ids[q - 1] > id)
			{
				ids[q] = ids[q - 1];
				q--;
			}
			ids[q] = id;
			start[s->members[j] + 1]++;
		}
		if ((i & 0xffff) == 0)
			ups_check_interrupts();
	}
	for (x = 0; x < s->nitems; x++)
	{
		if (start[x + 1] > most)
			most = start[x + 1];
		start[x + 1] += start[x];
	}
	/* the qualifying sets of each item, grouped by item */
	of_item = ups_alloc(start[s->nitems] * sizeof(uint32_t) + 1);
	for (i = 0; i < s->nsets; i++)
	{
		size_t		from = s->set_start[i],
					to = s->set_start[i + 1];

		if (to - from < (size_t) (min_size < 1 ? 1 : min_size) || !(lift[i] > min_lift))
			continue;
		for (j = from; j < to; j++)
			of_item[start[s->members[j]]++] = (uint32_t) i;
	}
	/* start[x] is now the end of item x's sets */
	entries = ups_alloc(most * sizeof(TopEntry) + 1);
	for (x = 0; x < s->nitems; x++)
	{
		size_t		from = x == 0 ? 0 : start[x - 1],
					n = start[x] - from;

		for (j = 0; j < n; j++)
		{
			uint32_t	set = of_item[from + j];

			entries[j].lift = lift[set];
			entries[j].count = s->set_counts[set];
			entries[j].ids = ids + s->set_start[set];
			entries[j].size = (uint32_t) (s->set_start[set + 1] - s->set_start[set]);
			entries[j].set = set;
		}
		qsort(entries, n, sizeof(TopEntry), top_cmp);
		for (j = 0; j < n && j < (size_t) k; j++)
		{
			ItemsetTop	top;

			top.item = x;
			top.rank = (int) j + 1;
			top.set = entries[j].set;
			top.lift = entries[j].lift;
			top.ids = entries[j].ids;
			top.size = (int) entries[j].size;
			fn(arg, &top);
		}
		if ((x & 0xfff) == 0)
			ups_check_interrupts();
	}
	ups_free(entries);
	ups_free(of_item);
	ups_free(start);
	ups_free(lift);
	ups_free(ids);
}
