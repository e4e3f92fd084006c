#!/usr/bin/env bash
# Benchmark part: serving speed of the funnel stages (issue 7).
#
# pgbench, client and server on the same 2-core box, 2 clients, prepared
# statements, BENCH_SECONDS (default 15) per query in BENCH_ROUNDS (default 3)
# interleaved rounds; per-transaction latencies from pgbench's log give
# p50/p99.  Compared in the same run with a primary-key lookup of the catalog.
source "$(dirname "$0")/lib.sh"

SECONDS_PER=${BENCH_SECONDS:-15}
PGBENCH="$(dirname "$PSQL")/pgbench"
[ -x "$PGBENCH" ] || PGBENCH=pgbench
work=$(mktemp -d)
trap 'rm -rf "$work"; bq -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_f CASCADE; DELETE FROM upsell.volume_tiers WHERE tenant_id = 0 AND note = '"'"'bench'"'"'" >/dev/null 2>&1 || true' EXIT

# 1000 carts of 5 products drawn from the 1000 most popular, and 1000 products;
# the shop's spend thresholds (as in 50_thresholds), so that carts below them
# get gap fillers.  Volume tiers (10% off from 3 units, 15% from 6) on the
# products ranked 1001-2000 in popularity, none of the plain carts': a tiered
# cart has 2 of them (bought 2 and 3 times) beside 3 of the 1000 most popular,
# so that its lines' tiers, its tier offers and its cart value at tier prices
# are all read.
bq <<'SQL'
SET client_min_messages = warning;
DELETE FROM upsell.thresholds WHERE tenant_id = 0 AND reward LIKE 'bench:%';
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES
	('free_shipping', 50, 'bench: free shipping'), ('gift', 80, 'bench: free gift'),
	('discount', 125, 'bench: 15% off');
DELETE FROM upsell.volume_tiers WHERE tenant_id = 0 AND note = 'bench';
INSERT INTO upsell.volume_tiers (product_id, min_quantity, percent_off, note)
SELECT m.product_id, t.q, t.off, 'bench'
FROM upsell.product_popularity m, (VALUES (3, 10), (6, 15)) t(q, off)
WHERE m.popularity_rank BETWEEN 1001 AND 2000;
DROP SCHEMA IF EXISTS bench_f CASCADE;
CREATE SCHEMA bench_f;
CREATE TABLE bench_f.carts AS
SELECT i AS cart_id,
	   ARRAY(SELECT m.product_id FROM upsell.product_popularity m
			 WHERE m.popularity_rank <= 1000 ORDER BY hashint8(m.product_id * 7919 + i) LIMIT 5) AS items
FROM generate_series(1, 1000) i;
ALTER TABLE bench_f.carts ADD PRIMARY KEY (cart_id);
CREATE TABLE bench_f.tier_carts AS
SELECT i AS cart_id,
	   ARRAY(SELECT m.product_id FROM upsell.product_popularity m
			 WHERE m.popularity_rank BETWEEN 1001 AND 2000 ORDER BY hashint8(m.product_id * 7919 + i) LIMIT 2)
	   || ARRAY(SELECT m.product_id FROM upsell.product_popularity m
				WHERE m.popularity_rank <= 1000 ORDER BY hashint8(m.product_id * 7919 + i) LIMIT 3) AS items,
	   '{2,3,1,1,1}'::int[] AS quantities
FROM generate_series(1, 1000) i;
ALTER TABLE bench_f.tier_carts ADD PRIMARY KEY (cart_id);
CREATE TABLE bench_f.pages AS
SELECT row_number() OVER (ORDER BY hashint8(product_id)) AS page_id, product_id
FROM upsell.product_popularity WHERE popularity_rank <= 20000 ORDER BY hashint8(product_id) LIMIT 1000;
ALTER TABLE bench_f.pages ADD PRIMARY KEY (page_id);
CREATE TABLE bench_f.orders AS
SELECT row_number() OVER () AS n, order_id FROM (
	SELECT DISTINCT order_id FROM bench.order_lines ORDER BY order_id DESC LIMIT 1000) o;
ALTER TABLE bench_f.orders ADD PRIMARY KEY (n);
ANALYZE bench_f.carts, bench_f.tier_carts, bench_f.pages, bench_f.orders;
SQL
# the models as a shop serves them between refreshes: vacuumed (visibility
# map and hint bits set), not with autovacuum catching up on a fresh build
bq <<'SQL'
SELECT format('VACUUM %s', c.oid::regclass) FROM pg_class c
WHERE c.relnamespace = 'upsell'::regnamespace AND c.relkind = 'r' \gexec
SQL

cat >"$work/pk.sql" <<'EOF2'
\set p random(1, 1000)
SELECT * FROM bench.products WHERE product_id = (SELECT product_id FROM bench_f.pages WHERE page_id = :p);
EOF2
cat >"$work/product_page.sql" <<'EOF2'
\set p random(1, 1000)
SELECT * FROM upsell.product_page_offers WHERE product_id = (SELECT product_id FROM bench_f.pages WHERE page_id = :p);
EOF2
cat >"$work/cart.sql" <<'EOF2'
\set c random(1, 1000)
SELECT * FROM upsell.cart_offers((SELECT items FROM bench_f.carts WHERE cart_id = :c));
EOF2
cat >"$work/cart_tiers.sql" <<'EOF2'
\set c random(1, 1000)
SELECT * FROM upsell.cart_offers((SELECT items FROM bench_f.tier_carts WHERE cart_id = :c),
								 (SELECT quantities FROM bench_f.tier_carts WHERE cart_id = :c));
EOF2
cat >"$work/post_purchase.sql" <<'EOF2'
\set o random(1, 1000)
SELECT * FROM upsell.post_purchase_offers WHERE order_id = (SELECT order_id::text FROM bench_f.orders WHERE n = :o);
EOF2

# The machine's speed drifts by +-15% within minutes: every query runs in
# ROUNDS short rounds, interleaved with the others, and reports its median
# round; p50/p99 pool the latencies of all rounds.
ROUNDS=${BENCH_ROUNDS:-3}
ROUND_SECONDS=$(( (SECONDS_PER + ROUNDS - 1) / ROUNDS ))
declare -A TPS_OF

round() {	# name script round
	local name=$1 script=$2 r=$3 out
	out=$(cd "$work" && "$PGBENCH" -n -M prepared -c 2 -j 2 -T "$ROUND_SECONDS" -l \
		--log-prefix="log.$name.$r" -f "$script" 2>&1) || { printf '%s\n' "$out"; return 1; }
	TPS_OF[$name]="${TPS_OF[$name]:-} $(printf '%s\n' "$out" | awk '/^tps = / {printf "%.0f", $3}')"
}

report() {	# name label: sets TPS and P99
	local name=$1 label=$2 p50
	TPS=$(printf '%s\n' ${TPS_OF[$name]} | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
	# log lines: client_id transaction_no time_us script_no epoch epoch_us
	read -r p50 P99 <<<"$(cat "$work"/log."$name".* | awk '{print $3}' | sort -n |
		awk '{a[NR] = $1} END {printf "%.3f %.3f", a[int(NR * 0.50)] / 1000, a[int(NR * 0.99)] / 1000}')"
	printf '%-34s %8s TPS   p50 %7s ms   p99 %7s ms   (rounds:%s)\n' "$label" "$TPS" "$p50" "$P99" "${TPS_OF[$name]}"
}

queries="pk product_page cart cart_tiers"
if bq -c "SELECT to_regclass('upsell.post_purchase_offers') IS NOT NULL" | grep -q t; then
	queries="$queries post_purchase"
fi
echo "pgbench, 2 clients, prepared statements, $ROUNDS interleaved rounds of ${ROUND_SECONDS} s per query:"
for r in $(seq 1 "$ROUNDS"); do
	for q in $queries; do
		round "$q" "$work/$q.sql" "$r"
	done
done
report pk "primary-key lookup (baseline)"
PK_TPS=$TPS
report product_page "product_page_offers (view)"
result "product_page_offers: $TPS TPS, p99 $P99 ms, $(bench_ratio "$PK_TPS" "$TPS")x fewer TPS than a PK lookup ($PK_TPS TPS)"
report cart "cart_offers (5-item cart)"
result "cart_offers, 5-item cart: $TPS TPS, p99 $P99 ms, $(bench_ratio "$PK_TPS" "$TPS")x fewer TPS than a PK lookup"
report cart_tiers "cart_offers (5 items, 2 tiered)"
result "cart_offers, 5-item cart with 2 tiered lines (quantities 2 and 3): $TPS TPS, p99 $P99 ms, $(bench_ratio "$PK_TPS" "$TPS")x fewer TPS than a PK lookup"
if [[ $queries == *post_purchase* ]]; then
	report post_purchase "post_purchase_offers (by order)"
	result "post_purchase_offers by order: $TPS TPS, p99 $P99 ms"
fi
