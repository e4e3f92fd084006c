#!/usr/bin/env bash
# Readers under refresh: pgbench runs the three funnel stages,
# recommend_for_cart, gap_fillers and upgrade_candidates from CLIENTS clients,
# first without a refresh, then while REFRESHES refreshes (every
# FULL_EVERY-th one full, the others incremental) run one after another.
# Every request compares its answer with the answer taken before the run: an
# error, an empty answer or a different one aborts the pgbench client, and
# any aborted client fails the run.  Prints requests, failures, p50/p99 with
# and without refresh, and the refreshes' statuses; exits 1 on a failed
# request, a refresh not 'ok', or (with MAX_RATIO) a p99 ratio above it.
#
# Used by test/e2e/refresh_under_load.sh (a small shop, short) and
# test/bench/95_refresh_under_load.sh (the bench shop, 20 refreshes).  Needs
# PGDATABASE etc. set, the shop registered and refreshed once.
#
#   CLIENTS (2)  SAMPLES per request kind (40)  REFRESHES (6)  FULL_EVERY (2)
#   BASE_SECONDS (10)  CHUNK_SECONDS (3)  MAX_RATIO (unset: not checked)
set -euo pipefail

PGBIN=${PGBIN:-$(dirname "$(command -v psql)")}
CLIENTS=${CLIENTS:-2}
SAMPLES=${SAMPLES:-40}
REFRESHES=${REFRESHES:-6}
FULL_EVERY=${FULL_EVERY:-2}
BASE_SECONDS=${BASE_SECONDS:-10}
CHUNK_SECONDS=${CHUNK_SECONDS:-3}
MAX_RATIO=${MAX_RATIO:-}

q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
work=$(mktemp -d)
cleanup() {
	[ -n "${refresher:-}" ] && kill "$refresher" 2>/dev/null || true
	q -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS rul CASCADE; DELETE FROM upsell.thresholds WHERE reward = 'refresh_load'" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# ---- the requests and their answers before the run ---------------------------
q >/dev/null <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS rul CASCADE;
CREATE SCHEMA rul;
-- the tenant with the most products
CREATE TABLE rul.tenant AS
	SELECT tenant_id AS t, max(ordered_at) AS at FROM upsell.order_model
	WHERE tenant_id = (SELECT tenant_id FROM upsell.product_model GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
	GROUP BY 1;
-- a threshold for gap_fillers: three median prices
INSERT INTO upsell.thresholds (tenant_id, kind, amount, reward)
SELECT t.t, 'free_shipping', 3 * percentile_cont(0.5) WITHIN GROUP (ORDER BY m.price)::numeric, 'refresh_load'
FROM rul.tenant t JOIN upsell.product_model m ON m.tenant_id = t.t AND m.price > 0
GROUP BY t.t
HAVING NOT EXISTS (SELECT FROM upsell.thresholds h WHERE h.tenant_id = t.t);

CREATE FUNCTION rul.answer(kind text, items bigint[], customer bigint)
RETURNS text LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE
	t bigint := (SELECT r.t FROM rul.tenant r);
	at timestamptz := (SELECT r.at FROM rul.tenant r);
BEGIN
	RETURN CASE kind
	WHEN 'product_page_offers' THEN
		(SELECT string_agg(o.offer_type || o.product_ids::text || round(o.score::numeric, 6), ' ' ORDER BY o.rank)
		 FROM upsell.product_page_offers(items[1], t) o)
	WHEN 'cart_offers' THEN
		(SELECT string_agg(o.offer_type || o.product_ids::text || round(o.score::numeric, 6), ' ' ORDER BY o.rank)
		 FROM upsell.cart_offers(items, NULL, t) o)
	WHEN 'post_purchase_offers' THEN
		(SELECT string_agg(o.offer_type || o.product_ids::text || round(o.score::numeric, 6), ' ' ORDER BY o.rank)
		 FROM upsell.post_purchase_offers(items, customer, t, at => at) o)
	WHEN 'recommend_for_cart' THEN
		(SELECT string_agg(r.product_id || ':' || round(r.score::numeric, 6), ' ' ORDER BY r.rank)
		 FROM upsell.recommend_for_cart(items, 4, t) r)
	WHEN 'gap_fillers' THEN
		(SELECT string_agg(g.product_ids::text, ' ' ORDER BY g.rank)
		 FROM upsell.gap_fillers(items, tenant_id => t, at => at) g)
	WHEN 'upgrade_candidates' THEN
		(SELECT string_agg(u.candidate_id || ':' || round(u.score::numeric, 6), ' ' ORDER BY u.rank)
		 FROM upsell.upgrade_candidates(items[1], 3, tenant_id => t) u)
	END;
END
\$\$;

-- products with complements (carts of one or two), recent orders
CREATE TABLE rul.request (i serial PRIMARY KEY, kind text, items bigint[], customer bigint, expected text);
INSERT INTO rul.request (kind, items, customer)
SELECT k.kind, s.items, s.customer
FROM (SELECT ARRAY[c.product_id] || CASE WHEN n % 2 = 0 THEN c.complement_ids[1:1] ELSE '{}' END AS items,
			 NULL::bigint AS customer, n
	  FROM (SELECT c.*, row_number() OVER (ORDER BY hashint8(c.product_id), c.product_id) AS n
			FROM upsell.cart_model c, rul.tenant r
			WHERE c.tenant_id = r.t AND cardinality(c.complement_ids) > 0) c
	  WHERE n <= $SAMPLES) s,
	 (VALUES ('product_page_offers'), ('cart_offers'), ('recommend_for_cart'), ('gap_fillers'),
			 ('upgrade_candidates')) k(kind)
UNION ALL
SELECT 'post_purchase_offers', o.items, o.customer_id
FROM (SELECT o.*, row_number() OVER (ORDER BY hashint8(o.order_key), o.order_key) AS n
	  FROM upsell.order_model o, rul.tenant r WHERE o.tenant_id = r.t) o
WHERE o.n <= $SAMPLES;
UPDATE rul.request SET expected = rul.answer(kind, items, customer);
-- where the model has data: only requests answered before the run count
DELETE FROM rul.request WHERE expected IS NULL;
CREATE TABLE rul.ids AS SELECT array_agg(i ORDER BY i) AS ids FROM rul.request;

CREATE FUNCTION rul.check(n int) RETURNS void LANGUAGE plpgsql VOLATILE AS \$\$
DECLARE
	r rul.request;
	got text;
BEGIN
	SELECT * INTO r FROM rul.request WHERE i = (SELECT ids[n] FROM rul.ids);
	got := rul.answer(r.kind, r.items, r.customer);
	IF got IS NULL THEN
		RAISE EXCEPTION 'empty answer: % of %', r.kind, r.items;
	ELSIF got <> r.expected THEN
		RAISE EXCEPTION 'changed answer: % of %: % instead of %', r.kind, r.items, got, r.expected;
	END IF;
END
\$\$;
SQL
NREQ=$(q -c "SELECT cardinality(ids) FROM rul.ids")
KINDS=$(q -c "SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind) FROM (SELECT kind, count(*) n FROM rul.request GROUP BY 1) x")
echo "requests with an answer before the run: $NREQ ($KINDS)"
[ "$NREQ" -gt 0 ] || { echo "no request has an answer: nothing to measure"; exit 1; }
printf '\\set n random(1, %d)\nSELECT rul.check(:n);\n' "$NREQ" >"$work/check.sql"

# ---- pgbench in chunks: $1 phase name; runs while $2 (a pid) lives or once -----
FAILURES=0
bench_chunk() {
	local phase=$1 out
	if ! out=$(cd "$work" && "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$CHUNK_SECONDS" \
			-f check.sql -l --log-prefix="$phase" 2>&1); then
		FAILURES=$((FAILURES + 1))
		printf '%s\n' "$out" | grep -iE 'error|abort|empty|changed' | head -5 >&2
	elif printf '%s\n' "$out" | grep -qE 'aborted|failed transactions: [1-9]'; then
		FAILURES=$((FAILURES + 1))
		printf '%s\n' "$out" | grep -iE 'error|abort|fail' | head -5 >&2
	fi
}
# latency percentile (ms) over a phase's logs: column 3 is the latency in us
pct() {
	cat "$work/$1".* 2>/dev/null | awk '{print $3}' | sort -n |
		awk -v p="$2" '{a[NR] = $1} END { if (NR == 0) print "nan"; else { i = int(NR * p); if (i < 1) i = 1; printf "%.2f", a[i] / 1000 } }'
}
count() { cat "$work/$1".* 2>/dev/null | wc -l; }

# ---- 1. without refresh ------------------------------------------------------------
end=$(( $(date +%s) + BASE_SECONDS ))
while [ "$(date +%s)" -lt "$end" ]; do bench_chunk base; done
BASE_FAILURES=$FAILURES

# ---- 2. while refreshes run ------------------------------------------------------------
first_log=$(q -c "SELECT coalesce(max(refresh_id), 0) FROM upsell.refresh_log")
(
	for k in $(seq 1 "$REFRESHES"); do
		if [ $((k % FULL_EVERY)) = 0 ]; then inc=false; else inc=true; fi
		q -c "SET client_min_messages = warning" -c "CALL upsell.refresh(incremental => $inc)" >/dev/null 2>"$work/refresh.err" || echo "refresh $k failed: $(cat "$work/refresh.err")" >&2
	done
) &
refresher=$!
t0=$(date +%s%3N)
while kill -0 "$refresher" 2>/dev/null; do bench_chunk during; done
wait "$refresher" || true
refresher=""
REFRESH_S=$(awk -v ms=$(( $(date +%s%3N) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
DURING_FAILURES=$((FAILURES - BASE_FAILURES))

read -r NREF NOK NFULL STATUSES <<<"$(q -F ' ' -c "
	SELECT count(*), count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE NOT incremental),
		   string_agg(DISTINCT status, ',')
	FROM upsell.refresh_log WHERE refresh_id > $first_log")"
B50=$(pct base 0.50); B99=$(pct base 0.99); D50=$(pct during 0.50); D99=$(pct during 0.99)
RATIO=$(awk -v a="$D99" -v b="$B99" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
echo "result: readers ($CLIENTS clients, $NREQ requests of 6 kinds) without refresh: $(count base) requests, $BASE_FAILURES failed chunks, p50 $B50 ms, p99 $B99 ms"
echo "result: readers during $NREF refreshes ($NFULL full, $((NREF - NFULL)) incremental; status $STATUSES; ${REFRESH_S}s): $(count during) requests, $DURING_FAILURES failed chunks, p50 $D50 ms, p99 $D99 ms"
echo "result: p99 during refresh / without: ${RATIO}x (load average $(cut -d' ' -f1-3 /proc/loadavg))"

rc=0
[ "$FAILURES" = 0 ] || { echo "FAIL: failed or wrong answers (see above)"; rc=1; }
[ "$NREF" = "$REFRESHES" ] && [ "$NOK" = "$NREF" ] || { echo "FAIL: $NOK of $NREF refreshes ok (of $REFRESHES run)"; rc=1; }
[ "$(count during)" -gt 0 ] || { echo "FAIL: no request ran during the refreshes"; rc=1; }
if [ -n "$MAX_RATIO" ] && awk -v r="$RATIO" -v m="$MAX_RATIO" 'BEGIN { exit !(r >= m) }'; then
	echo "FAIL: p99 during refresh is ${RATIO}x the p99 without (limit ${MAX_RATIO}x)"
	rc=1
fi
exit $rc
