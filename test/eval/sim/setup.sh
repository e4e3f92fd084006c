#!/usr/bin/env bash
# Offline simulation of recommend_for_cart, step 1 (README, "Offline
# evaluation"): like scripts/eval.sh, but one database per dataset
# (ev_groceries, ev_retail, ...) and the cluster left running, so that
# export.sh can read each dataset's training models and cases afterwards.
#   DATASETS  the datasets (default: all five); EVAL_CASES as eval.sh
# Stop the cluster afterwards with pg_ctl (PGHOST/PGPORT printed at the end).
source "$(dirname "$0")/../../../scripts/lib.sh"
source "$REPO/test/eval/datasets.sh"
DATA=${EVAL_DATA:-$REPO/../shared/data}
ensure_build_deps
build_and_install
start_cluster
for ds in ${DATASETS:-$EVAL_DATASETS}; do
	export PGDATABASE=ev_${ds//-/_}
	"$PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE" >/dev/null
	psql_q -c "CREATE EXTENSION upsell"
	psql_q -f test/eval/harness.sql >/dev/null
	eval_raw_tables
	eval_load "$ds"
	psql_q -f test/eval/load.sql
	say "evaluating $ds"
	psql_q -c "SELECT upsell_eval.evaluate('$ds', ${EVAL_CASES:-2000})" >/dev/null
	"$PGBIN/psql" -X -q -c "SELECT dataset, method, cases, hr10, mrr10, vs_best_baseline FROM upsell_eval.results ORDER BY sort"
done
echo "PGHOST=$PGHOST PGPORT=$PGPORT"
