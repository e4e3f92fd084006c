#!/usr/bin/env bash
# make bench: build and install upsell, start the throwaway cluster (or use
# PGHOST/PGPORT), generate a synthetic shop (test/bench/gen_orders) into
# database upsell_bench, register it, time CALL upsell.refresh(), then run
# every benchmark part test/bench/NN_*.sh in name order and print a summary.
#
#   BENCH_LINES  order lines to generate (default 1000000)
#   BENCH_SEED   generator seed (default 42)
#   BENCH_RUNS   runs per timed statement in the parts (default 3; medians)
#   BENCH_ONLY   run only the parts whose file name contains this text
#   BENCH_FRESH  1: regenerate the data even when the cached copy matches
#   UPSELL_SERVER_SETTINGS  the throwaway cluster's settings of this run,
#                "name=value ..." (scripts/lib.sh)
#
# The generated data stay in upsell_bench between runs and are reused when
# lines, seed and the generator's source are unchanged (bench.meta); the
# extension is always dropped and recreated, so models are always fresh.
source "$(dirname "$0")/lib.sh"

BENCH_LINES=${BENCH_LINES:-1000000}
BENCH_SEED=${BENCH_SEED:-42}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_ONLY=${BENCH_ONLY:-}
BENCH_FRESH=${BENCH_FRESH:-0}
export BENCH_LINES BENCH_SEED BENCH_RUNS

now_ms() { date +%s%3N; }
T_ALL=$(now_ms)

ensure_build_deps
build_and_install
make -s PG_CONFIG="$PG_CONFIG" test/bench/gen_orders
GEN="$REPO/test/bench/gen_orders"

trap stop_cluster EXIT
start_cluster
PSQL="$PGBIN/psql"
export PSQL

"$PSQL" -X -q -d postgres -v ON_ERROR_STOP=1 -c "SELECT 1" >/dev/null
if ! "$PSQL" -X -q -A -t -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'upsell_bench'" | grep -q 1; then
	"$PSQL" -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE upsell_bench"
fi
export PGDATABASE=upsell_bench
# bq, the timing helpers, drop_added_lines
source test/bench/lib.sh

# ---- data -------------------------------------------------------------------
GEN_HASH=$(cat test/bench/gen_orders.c | md5sum | cut -c1-32)
WANT="$BENCH_LINES $BENCH_SEED $GEN_HASH"
HAVE=$(bq -c "SELECT lines || ' ' || seed || ' ' || generator FROM bench.meta" 2>/dev/null || true)
if [ "$BENCH_FRESH" = 1 ] || [ "$HAVE" != "$WANT" ]; then
	say "generating $BENCH_LINES order lines (seed $BENCH_SEED) into upsell_bench"
	t0=$(now_ms)
	bq <<-'SQL'
		SET client_min_messages = warning;
		DROP SCHEMA IF EXISTS bench CASCADE;
		CREATE SCHEMA bench;
		CREATE TABLE bench.products (
			product_id bigint PRIMARY KEY, category text, variant_group text,
			price numeric(10,2), in_stock boolean, unit_size numeric, unit_name text);
		CREATE TABLE bench.order_lines (
			order_id bigint NOT NULL, product_id bigint NOT NULL, customer_id bigint NOT NULL,
			ordered_at timestamptz NOT NULL, quantity int NOT NULL, unit_price numeric(10,2) NOT NULL);
		CREATE TABLE bench.planted (
			product_id bigint, complement_id bigint, per_mille int,
			PRIMARY KEY (product_id, complement_id));
		COMMENT ON TABLE bench.planted IS
			'complements planted by gen_orders: an order with product_id also gets complement_id with probability per_mille/1000';
	SQL
	"$GEN" -s "$BENCH_SEED" -n "$BENCH_LINES" products | bq -c "COPY bench.products FROM STDIN"
	"$GEN" -s "$BENCH_SEED" -n "$BENCH_LINES" complements | bq -c "COPY bench.planted FROM STDIN"
	"$GEN" -s "$BENCH_SEED" -n "$BENCH_LINES" lines | bq -c "COPY bench.order_lines FROM STDIN"
	# the indexes a shop's order table would have
	bq <<-SQL
		CREATE INDEX ON bench.order_lines (order_id);
		CREATE INDEX ON bench.order_lines (product_id);
		CREATE INDEX ON bench.order_lines (customer_id, ordered_at);
		VACUUM ANALYZE bench.products;
		VACUUM ANALYZE bench.order_lines;
		VACUUM ANALYZE bench.planted;
		CREATE TABLE bench.meta AS SELECT $BENCH_LINES::bigint AS lines, $BENCH_SEED::bigint AS seed, '$GEN_HASH'::text AS generator;
	SQL
	say "data generated and loaded in $(( ($(now_ms) - t0) )) ms"
else
	say "reusing the generated data in upsell_bench ($BENCH_LINES lines, seed $BENCH_SEED; BENCH_FRESH=1 regenerates)"
	# the lines part 94_incremental adds, left by a run killed before its
	# EXIT trap deleted them: out, or every part would measure a bigger shop
	drop_added_lines
fi

# Timing helper for the parts (see test/bench/lib.sh): runs a statement
# `runs` times and returns the median, min and max wall time in ms, and the
# median CPU time of this backend (from /proc/self/schedstat, in ns, where
# the server runs on Linux; NULL elsewhere).  The machine is shared, so wall
# times carry other people's load; the backend's own CPU time does not (it
# leaves out parallel workers' CPU, which the wall time of the run includes).
bq <<-'SQL'
	DROP FUNCTION IF EXISTS bench.time_runs(text, int);
	CREATE FUNCTION bench.time_runs(sql text, runs int,
		OUT median_ms float8, OUT min_ms float8, OUT max_ms float8, OUT cpu_ms float8)
	LANGUAGE plpgsql AS $$
	DECLARE
		t0 timestamptz;
		c0 float8;
		ms float8[] := '{}';
		cpu float8[] := '{}';
	BEGIN
		FOR i IN 1 .. runs LOOP
			c0 := bench.backend_cpu_ms();
			t0 := clock_timestamp();
			EXECUTE sql;
			ms := ms || (extract(epoch FROM clock_timestamp() - t0) * 1000)::float8;
			cpu := cpu || (bench.backend_cpu_ms() - c0);
		END LOOP;
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), min(x), max(x)
		INTO median_ms, min_ms, max_ms FROM unnest(ms) x;
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO cpu_ms FROM unnest(cpu) x;
	END
	$$;
	CREATE OR REPLACE FUNCTION bench.backend_cpu_ms() RETURNS float8
	LANGUAGE plpgsql AS $$
	BEGIN
		RETURN split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 / 1e6;
	EXCEPTION WHEN OTHERS THEN
		RETURN NULL;		-- not Linux
	END
	$$;
SQL

# ---- extension, registration, refresh ----------------------------------------
say "creating the extension and registering bench.order_lines and bench.products"
bq <<-'SQL' >/dev/null
	SET client_min_messages = warning;
	DROP EXTENSION IF EXISTS upsell CASCADE;
	CREATE EXTENSION upsell;
	SELECT upsell.register_orders('bench.order_lines', 'order_id', 'product_id',
		customer_id => 'customer_id', ordered_at => 'ordered_at',
		quantity => 'quantity', unit_price => 'unit_price');
	SELECT upsell.register_products('bench.products', 'product_id',
		price => 'price', category => 'category', variant_group => 'variant_group',
		in_stock => 'in_stock', unit_size => 'unit_size', unit_name => 'unit_name');
SQL

read -r NLINES NORDERS NPRODUCTS NCUST <<<"$(bq -F ' ' -c "SELECT count(*), count(DISTINCT order_id), (SELECT count(*) FROM bench.products), count(DISTINCT customer_id) FROM bench.order_lines")"

say "CALL upsell.refresh()"
bench_refresh "CALL upsell.refresh()"

SUMMARY=$(mktemp)
{
	echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB RAM; PostgreSQL $(bq -c 'SHOW server_version'); load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ -n "${UPSELL_SERVER_SETTINGS:-}" ]; then
		echo "server settings: $UPSELL_SERVER_SETTINGS"
	fi
	echo "data: $NLINES order lines, $NORDERS orders, $NPRODUCTS products, $NCUST customers (seed $BENCH_SEED)"
	echo "refresh: CALL upsell.refresh() took $REFRESH_MS ms; backend peak private memory (RssAnon) $((PEAK_KB / 1024)) MiB, with its workers (parallel, side builds) $((PEAK_ALL_KB / 1024)) MiB"
	bench_model_times
} >"$SUMMARY"
cat "$SUMMARY"

# ---- the parts -----------------------------------------------------------------
OK=0
FAILED=0
FAILED_NAMES=""
for part in test/bench/[0-9][0-9]_*.sh; do
	[ -e "$part" ] || continue
	name=$(basename "$part" .sh)
	if [ -n "$BENCH_ONLY" ] && [[ "$name" != *"$BENCH_ONLY"* ]]; then
		continue
	fi
	printf '\n== %s\n' "$name"
	log=$(mktemp)
	t0=$(now_ms)
	if bash "$part" 2>&1 | tee "$log"; then
		rc=0
	else
		rc=$?
	fi
	secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
	if [ "$rc" = 0 ]; then
		OK=$((OK + 1))
		echo "$name: ok (${secs}s)" >>"$SUMMARY"
	else
		FAILED=$((FAILED + 1))
		FAILED_NAMES="$FAILED_NAMES $name"
		echo "== $name FAILED (exit $rc)"
		echo "$name: FAILED (exit $rc, ${secs}s)" >>"$SUMMARY"
	fi
	grep '^result: ' "$log" | sed 's/^result: /  /' >>"$SUMMARY" || true
	rm -f "$log"
done

printf '\n==== benchmark summary (%s)\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
cat "$SUMMARY"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates wall times)"
echo "parts: $OK ok, $FAILED failed${FAILED_NAMES:+ (}${FAILED_NAMES# }${FAILED_NAMES:+)}; total $(( ($(now_ms) - T_ALL) / 1000 ))s"
rm -f "$SUMMARY"
stop_cluster
[ "$FAILED" = 0 ]
