# Helpers for the benchmark parts test/bench/NN_*.sh (sourced, not run).
# scripts/bench.sh runs each part with PGHOST, PGPORT, PGDATABASE (and
# BENCH_LINES, BENCH_RUNS) exported, on a database where schema bench holds
# bench.products and bench.order_lines, both registered, after
# CALL upsell.refresh().
#
#   bq [psql args]       psql unaligned, tuples only, stop on error; SQL from
#                        -c "..." or stdin
#   bench_time LABEL N SQL
#                        run SQL N times server-side (bench.time_runs) and print
#                        "LABEL  median X ms (min Y, max Z, N runs; backend
#                        CPU C ms)"; sets BENCH_MEDIAN_MS to the median wall
#                        time, BENCH_CPU_MS to the median CPU time of the
#                        backend alone (parallel workers' CPU not included)
#   bench_ratio A B      A / B with two decimals
#   result LINE          prints a result line (the harness collects lines
#                        starting with "result:" into its summary)

set -euo pipefail

PSQL=${PSQL:-psql}
BENCH_RUNS=${BENCH_RUNS:-3}

bq() {
	"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

bench_time() {
	local label=$1 runs=$2 sql=$3 line
	line=$("$PSQL" -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 \
		-c "SELECT round(median_ms::numeric, 1), round(min_ms::numeric, 1), round(max_ms::numeric, 1), coalesce(round(cpu_ms::numeric, 1)::text, '?') FROM bench.time_runs(\$bench\$$sql\$bench\$, $runs)")
	set -- $line
	BENCH_MEDIAN_MS=$1
	BENCH_CPU_MS=$4
	printf '%-52s median %10s ms  (min %s, max %s, %d runs; backend CPU %s ms)\n' "$label" "$1" "$2" "$3" "$runs" "$4"
}

bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'
}

result() {
	printf 'result: %s\n' "$*"
}
