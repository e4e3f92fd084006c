/*
 * upsell.c
 *		Module entry point and settings.
 */
#include "postgres.h"

#include "fmgr.h"
#include "access/xact.h"
#include "utils/guc.h"

#include "upsell.h"

PG_MODULE_MAGIC;

int			upsell_max_basket_size = 100;
int			upsell_pairs_per_product = 50;

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
	MarkGUCPrefixReserved("upsell");
}

PG_FUNCTION_INFO_V1(upsell_in_transaction_block);

/*
 * _in_transaction_block(): whether the caller runs inside BEGIN ... COMMIT,
 * where a procedure may not COMMIT.  refresh() uses it to decide whether it
 * can commit its log entry before re-raising an error.
 */
Datum
upsell_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}
