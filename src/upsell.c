/*
 * upsell.c
 *		Module entry point and settings.
 */
#include "postgres.h"

#include "executor/spi.h"

#include <limits.h>

#include "fmgr.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/guc.h"

#include "upsell.h"

PG_MODULE_MAGIC;

int			upsell_max_basket_size = 100;
int			upsell_pairs_per_product = 50;
bool		upsell_force_weight_change = false;
int			upsell_itemsets_memory_limit = -1;
int			upsell_bundle_min_count = 5;
int			upsell_bundles_per_product = 10;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("upsell.max_basket_size",
							"Orders with more distinct products than this count for their products but not for pairs.",
							"One order of n products adds n*(n-1)/2 pairs; wholesale orders would dominate the counts and the run time.",
							&upsell_max_basket_size,
							100, 0, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.pairs_per_product",
							"How many complements refresh keeps per product in the serving model.",
							NULL,
							&upsell_pairs_per_product,
							50, 1, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("upsell.force_weight_change",
							 "Allows changing the variants or weights of a running experiment.",
							 "Units already exposed may then fall into another variant, and the results mix two allocations.",
							 &upsell_force_weight_change,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.itemsets_memory_limit",
							"Most memory frequent itemset mining may use; beyond it mining stops with an error.",
							"The FP-tree, its conditional trees and the itemsets found count against it. -1 means 32 times work_mem.",
							&upsell_itemsets_memory_limit,
							-1, -1, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.bundle_min_count",
							"Orders a set of products must appear in before refresh offers it as a bundle.",
							NULL,
							&upsell_bundle_min_count,
							5, 2, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.bundles_per_product",
							"How many bundles refresh keeps per product in the serving model.",
							NULL,
							&upsell_bundles_per_product,
							10, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("upsell");
}

PG_FUNCTION_INFO_V1(upsell_in_transaction_block);

/*
 * _in_transaction_block(): whether the calling procedure may not COMMIT:
 * inside BEGIN ... COMMIT, or called atomically (CALL from a function, or
 * from a procedure that was itself called so).  The procedure's own SPI
 * connection -- the current one, since this function opens none -- says
 * which.  refresh() uses it to decide whether it may commit per tenant.
 */
Datum
upsell_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock() || !SPI_inside_nonatomic_context());
}
