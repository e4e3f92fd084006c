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
#   bench_model_times    prints upsell.models: per model its rows, build
#                        time, the refreshing backend's CPU and, for a side
#                        build, its worker's
#   drop_added_lines     deletes the order lines of bench.added (the 1% new
#                        orders part 94_incremental adds) and the table

set -euo pipefail

PSQL=${PSQL:-psql}
BENCH_RUNS=${BENCH_RUNS:-3}

bq() {
	"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

drop_added_lines() {
	bq <<-'SQL' >/dev/null
		SET client_min_messages = warning;
		DO $$BEGIN
			IF to_regclass('bench.added') IS NOT NULL THEN
				DELETE FROM bench.order_lines o USING bench.added a WHERE o.order_id = a.order_id;
				DROP TABLE bench.added;
			END IF;
		END$$;
	SQL
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

bench_model_times() {
	bq -F ' ' -c "SELECT '  model ' || rpad(model, 28) || lpad(coalesce(row_count, 0)::text, 10) || ' rows '
		|| lpad(round(coalesce(build_ms, 0)::numeric)::text, 8) || ' ms, backend CPU '
		|| lpad(coalesce(round(cpu_ms::numeric)::text, '-'), 8) || ' ms'
		|| coalesce(', side build worker CPU ' || round(side_cpu_ms::numeric) || ' ms', '')
		FROM upsell.models ORDER BY build_order"
}

# The private memory (RssAnon, kB) of a process into RSS: 0 when it is gone
# or exiting (an exiting process has no RssAnon line).  Read by the shell
# itself, as everything the sampler below reads, and it waits without a
# sleep process: with a pgrep and an awk per process, every 0.1 s, the
# sampler took 40% of a core on an idle machine and 1.8 s of CPU during a
# 20 s refresh at 10M lines (0.1 s and 0.4 s now).
rss_anon() {
	local key value rest
	RSS=0
	{
		while read -r key value rest; do
			if [ "$key" = RssAnon: ]; then RSS=$value; break; fi
		done <"/proc/$1/status"
	} 2>/dev/null || true
}

# The workers of the backend $1 into WORKERS: its parallel workers, its side
# builds (src/side_build.c) and theirs, found among the postmaster's ($2)
# children by their process titles.
backend_workers() {
	local pid=$1 postmaster=$2 kid title kids=() titles=() owners=" $1 " i
	WORKERS=()
	# (the list ends without a newline: read fills kids and returns 1)
	{ read -r -a kids <"/proc/$postmaster/task/$postmaster/children" || true; } 2>/dev/null
	for kid in "${kids[@]}"; do
		title=
		{ IFS= read -r -d '' title <"/proc/$kid/cmdline"; } 2>/dev/null || true
		titles+=("$title")
		if [[ $title =~ ^postgres:\ upsell\ side\ build\ [a-z_]+\ for\ PID\ ([0-9]+) ]] &&
			[ "${BASH_REMATCH[1]}" = "$pid" ]; then
			owners="$owners$kid "
			WORKERS+=("$kid")
		fi
	done
	for i in "${!kids[@]}"; do
		if [[ ${titles[i]} =~ ^postgres:\ parallel\ worker\ for\ PID\ ([0-9]+) ]] &&
			[[ $owners == *" ${BASH_REMATCH[1]} "* ]]; then
			WORKERS+=("${kids[i]}")
		fi
	done
}

# bench_refresh SQL: runs SQL (a CALL upsell.refresh(...)) in one session
# while sampling, every 0.1 s, the private memory (RssAnon) of its backend
# and of the workers it starts (parallel workers, side builds).  Sets
# REFRESH_MS, PEAK_KB (the backend) and PEAK_ALL_KB (the backend plus its
# workers at the same moment); the session's notices go to stderr.
bench_refresh() {
	local sql=$1 pidfile peakfile t0 pid sampler
	pidfile=$(mktemp)
	peakfile=$(mktemp)
	t0=$(date +%s%3N)
	{ printf 'SELECT pg_backend_pid() \\g %s\n' "$pidfile"; printf '%s;\n' "$sql"; } |
		"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 2>&1 >/dev/null | sed 's/^/    /' >&2 &
	local job=$!
	while [ ! -s "$pidfile" ] && kill -0 "$job" 2>/dev/null; do sleep 0.05; done
	pid=$(tr -dc 0-9 <"$pidfile")
	(
		peak=0 peak_all=0 postmaster=0
		# a pipe nobody writes to: read -t on it waits without a sleep process
		exec {tick}<> <(:)
		{
			while read -r key value rest; do
				if [ "$key" = PPid: ]; then postmaster=$value; break; fi
			done <"/proc/$pid/status"
		} 2>/dev/null || true
		while [ -n "$pid" ] && [ -e "/proc/$pid" ]; do
			rss_anon "$pid"
			own=$RSS
			all=$own
			backend_workers "$pid" "$postmaster"
			for w in "${WORKERS[@]}"; do
				rss_anon "$w"
				all=$((all + RSS))
			done
			[ "$own" -gt "$peak" ] && peak=$own
			[ "$all" -gt "$peak_all" ] && peak_all=$all
			echo "$peak $peak_all" >"$peakfile"
			read -r -t 0.1 -u "$tick" || true
		done
	) &
	sampler=$!
	wait "$job"
	REFRESH_MS=$(( $(date +%s%3N) - t0 ))
	sleep 0.2
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	read -r PEAK_KB PEAK_ALL_KB <"$peakfile" || { PEAK_KB=0; PEAK_ALL_KB=0; }
	rm -f "$pidfile" "$peakfile"
}
