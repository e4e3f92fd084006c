#!/usr/bin/env bash
# Offline simulation, step 2: writes one dataset's database (setup.sh) as
# tab-separated files under OUT/<database>/ (default /tmp/upsell-sim): every
# training pair, the serving pair_model, product_model, category_model, the
# cases, every method's rank of each case, the training lines.
#   export.sh ev_groceries        (PGHOST, PGPORT, PGUSER as setup.sh printed)
set -euo pipefail
db=$1
out=${OUT:-/tmp/upsell-sim}/$db
mkdir -p "$out"
P="psql -X -q -d $db"
$P -c "\copy (SELECT product_id, other_id, terms[1]::bigint FROM upsell_eval.pairs) TO '$out/pairs.tsv'"
$P -c "\copy (SELECT product_id, other_id, together FROM upsell.pair_model) TO '$out/pm.tsv'"
$P -c "\copy (SELECT product_id, orders, popularity_rank, coalesce(category, ''), coalesce(variant_group, ''), in_stock FROM upsell.product_model) TO '$out/prod.tsv'"
$P -c "\copy (SELECT category, other_category, substitutes FROM upsell.category_model) TO '$out/cat.tsv'"
$P -c "\copy (SELECT case_id, array_to_string(cart, ','), hidden FROM upsell_eval.cases) TO '$out/cases.tsv'"
$P -c "\copy (SELECT method, case_id, coalesce(rank, -1), coalesce(substitute, false) FROM upsell_eval.ranks) TO '$out/ranks.tsv'"
$P -c "\copy (SELECT order_id, product_id FROM upsell_eval.train_lines) TO '$out/train.tsv'"
