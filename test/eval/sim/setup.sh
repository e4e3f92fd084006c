#!/usr/bin/env bash
# Offline simulation of recommend_for_cart, step 1 (README, "Offline
# evaluation"): like scripts/eval.sh, but one database per dataset
# (ev_groceries, ev_retail, ...) and the cluster left running, so that
# export.sh can read each dataset's training models and cases afterwards.
#   DATASETS  the datasets (default: all five); EVAL_CASES as eval.sh
# Stop the cluster afterwards with pg_ctl (PGHOST/PGPORT printed at the end).
source "$(dirname "$0")/../../../scripts/lib.sh"
DATA=${EVAL_DATA:-$REPO/../shared/data}
ensure_build_deps
build_and_install
start_cluster
for ds in ${DATASETS:-groceries groceries-members superstore electronics retail}; do
	export PGDATABASE=ev_${ds//-/_}
	"$PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" >/dev/null
	psql_q -c "CREATE EXTENSION upsell"
	psql_q -f test/eval/harness.sql >/dev/null
	psql_q <<'SQL'
CREATE UNLOGGED TABLE raw_groceries (n bigint GENERATED ALWAYS AS IDENTITY, line text);
CREATE UNLOGGED TABLE raw_retail (n bigint GENERATED ALWAYS AS IDENTITY, line text);
CREATE UNLOGGED TABLE raw_members (member bigint, day date, item text);
CREATE UNLOGGED TABLE raw_superstore (row_id int, order_id text, order_date text, ship_date text,
	ship_mode text, customer_id text, customer_name text, segment text, country text, city text,
	state text, postal_code text, region text, sku text, top_category text, sub_category text,
	product_name text, sales numeric, quantity int, discount numeric, profit numeric);
CREATE UNLOGGED TABLE raw_electronics (line text);
SQL
	case $ds in
	groceries) psql_q -c "COPY raw_groceries (line) FROM STDIN WITH (FORMAT text, DELIMITER E'\\x01')" <"$DATA/groceries/groceries.csv" ;;
	retail) psql_q -c "COPY raw_retail (line) FROM STDIN WITH (FORMAT text, DELIMITER E'\\x01')" <"$DATA/fimi-retail/retail.dat" ;;
	groceries-members) psql_q -c "COPY raw_members FROM STDIN WITH (FORMAT csv, HEADER true)" <"$DATA/groceries-members/Groceries_dataset.csv" ;;
	superstore) psql_q -c "COPY raw_superstore FROM STDIN WITH (FORMAT csv, HEADER true)" <"$DATA/superstore/Sample - Superstore.csv" ;;
	electronics) cat "$DATA"/electronics-sales-2019/Sales_*_2019.csv |
		psql_q -c "COPY raw_electronics FROM STDIN WITH (FORMAT text, DELIMITER E'\\x01')" ;;
	esac
	psql_q -f test/eval/load.sql
	say "evaluating $ds"
	psql_q -c "SELECT upsell_eval.evaluate('$ds', ${EVAL_CASES:-2000})" >/dev/null
	"$PGBIN/psql" -X -q -c "SELECT dataset, method, cases, hr10, mrr10, vs_best_baseline FROM upsell_eval.results ORDER BY sort"
done
echo "PGHOST=$PGHOST PGPORT=$PGPORT"
