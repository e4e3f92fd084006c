#!/usr/bin/env bash
# make eval: offline evaluation of cart completion on the public datasets
# (README, "Offer quality"): builds and installs upsell, starts the throwaway
# cluster (or uses PGHOST/PGPORT/PGDATABASE), loads every dataset found in
# EVAL_DATA (default ../shared/data, else the copies in test/data; an absent
# file skips its dataset), and for each: models built on the first 80% of the
# orders, leave-one-out carts from the last 20%, HR@10 and MRR@10 of the
# baselines, upsell's variants and upsell.recommend_for_cart.
#   EVAL_CASES  cases per dataset, a deterministic sample (default 2000; 0 = all)
#   EVAL_ONLY   only the datasets whose name contains the text
#   EVAL_UNSEEN only the cases of test orders none of whose cases is among the
#               first N of the sample (2000: the orders the score was never
#               tuned on); default 0, every test order
source "$(dirname "$0")/lib.sh"

DATA=${EVAL_DATA:-}
if [ -z "$DATA" ]; then
	if [ -d "$REPO/../shared/data" ]; then DATA=$REPO/../shared/data; else DATA=$REPO/test/data; fi
fi
CASES=${EVAL_CASES:-2000}
UNSEEN=${EVAL_UNSEEN:-0}
for n in "$CASES" "$UNSEEN"; do
	[[ "$n" =~ ^[0-9]+$ ]] || { say "EVAL_CASES and EVAL_UNSEEN are whole numbers, not '$n'"; exit 1; }
done

source "$REPO/test/eval/datasets.sh"

ensure_build_deps
build_and_install
start_cluster
trap stop_cluster EXIT
export PGDATABASE=upsell_eval
"$PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS upsell_eval" -c "CREATE DATABASE upsell_eval" >/dev/null
psql_q -c "CREATE EXTENSION upsell"
psql_q -f test/eval/harness.sql >/dev/null

say "loading the datasets from $DATA"
eval_raw_tables
for ds in $EVAL_DATASETS; do
	case "$ds" in *"${EVAL_ONLY:-}"*) eval_load "$ds" || true ;; esac
done
psql_q -f test/eval/load.sql

for ds in $EVAL_DATASETS; do
	case "$ds" in *"${EVAL_ONLY:-}"*) ;; *) continue ;; esac
	if [ "$(psql_q -At -c "SELECT count(*) > 0 FROM upsell_eval.lines WHERE dataset = '$ds'")" != t ]; then
		continue
	fi
	say "evaluating $ds ($CASES cases at most)"
	psql_q -c "SELECT upsell_eval.evaluate('$ds', $CASES, $UNSEEN)" >/dev/null
done

"$PGBIN/psql" -X -q <<'SQL'
\pset footer off
SELECT dataset, train_orders, test_orders, cases, all_cases AS "cases (all)", round(seconds::numeric, 1) AS seconds
FROM upsell_eval.meta ORDER BY dataset;
SELECT dataset, method, cases, hr10 AS "HR@10", mrr10 AS "MRR@10", vs_best_baseline AS "HR vs best baseline"
FROM upsell_eval.results ORDER BY dataset, sort, method;
SELECT method, round(avg(vs_best_baseline), 3) AS "mean HR vs best baseline",
	   min(vs_best_baseline) AS "worst dataset"
FROM upsell_eval.results GROUP BY method, sort ORDER BY sort, method;
-- upsell never offers a substitute of the cart: the cases that hide one
-- bound its HR@10 (ceiling); on the others every method competes for the
-- products a merchant would show
SELECT dataset, count(*) AS cases, count(*) FILTER (WHERE substitute) AS "hidden is a substitute",
	   round(1 - avg(CASE WHEN substitute THEN 1 ELSE 0 END), 4) AS "upsell's ceiling"
FROM upsell_eval.ranks WHERE method = 'upsell' GROUP BY dataset ORDER BY dataset;
SELECT dataset, method, cases, hr10 AS "HR@10", mrr10 AS "MRR@10", vs_best_baseline AS "HR vs best baseline"
FROM upsell_eval.complement_results ORDER BY dataset, sort, method;
SQL
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
