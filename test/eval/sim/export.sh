#!/usr/bin/env bash
# Offline simulation, step 2: writes one dataset's database (setup.sh) as
# tab-separated files under OUT/<database>/ (default /tmp/upsell-sim): every
# training pair, the serving pair_model, product_model, category_model, the
# cases, every method's rank of each case, the training lines; for the
# variants of issue 15's fourth round category_model's counts (cat2.tsv)
# and the orders' dates where the data has them (dates.tsv).
#   export.sh ev_groceries        (PGHOST, PGPORT, PGUSER as setup.sh printed)
set -euo pipefail
db=$1
out=${OUT:-/tmp/upsell-sim}/$db
mkdir -p "$out"
P="psql -X -q -d $db"
$P -c "\copy (SELECT product_id, other_id, terms[1]::bigint FROM upsell_eval.pairs) TO '$out/pairs.tsv'"
$P -c "\copy (SELECT product_id, other_id, together FROM upsell.pair_model) TO '$out/pm.tsv'"
$P -c "\copy (SELECT product_id, orders, popularity_rank, coalesce(category, ''), coalesce(variant_group, ''), in_stock FROM upsell.product_popularity) TO '$out/prod.tsv'"
$P -c "\copy (SELECT category, other_category, substitutes FROM upsell.category_model) TO '$out/cat.tsv'"
$P -c "\copy (SELECT case_id, array_to_string(cart, ','), hidden FROM upsell_eval.cases) TO '$out/cases.tsv'"
$P -c "\copy (SELECT method, case_id, coalesce(rank, -1), coalesce(substitute, false) FROM upsell_eval.ranks) TO '$out/ranks.tsv'"
$P -c "\copy (SELECT order_id, product_id FROM upsell_eval.train_lines) TO '$out/train.tsv'"
# for the variants bxsig/bxsub (simulate.py): category_model's counts
$P -c "\copy (SELECT category, other_category, substitutes, coalesce(together, 0), coalesce(expected, 0), source FROM upsell.category_model) TO '$out/cat2.tsv'"
# for bxdays: each order's date, seq numbered as test/eval/load.sql does
# (the raw tables setup.sh loaded; groceries and FIMI retail have no dates)
case $db in
ev_groceries_members) $P -c "\copy (SELECT row_number() OVER (ORDER BY day, member), day FROM raw_members GROUP BY member, day) TO '$out/dates.tsv'" ;;
ev_superstore) $P -c "\copy (SELECT row_number() OVER (ORDER BY min(to_date(order_date, 'DD/MM/YY')), order_id), min(to_date(order_date, 'DD/MM/YY')) FROM raw_superstore GROUP BY order_id) TO '$out/dates.tsv'" ;;
ev_electronics) $P -c "\copy (WITH p AS (SELECT split_part(line, ',', 1)::bigint AS order_id, to_timestamp(split_part(line, ',', 5), 'MM/DD/YY HH24:MI') AS ordered_at FROM raw_electronics WHERE line ~ '^\d+,[^,]+,\d+,[0-9.]+,[0-9/]+ [0-9:]+,') SELECT row_number() OVER (ORDER BY min(ordered_at), order_id), min(ordered_at)::date FROM p GROUP BY order_id) TO '$out/dates.tsv'" ;;
esac
