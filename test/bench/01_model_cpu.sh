#!/usr/bin/env bash
# Benchmark part: what each model's build costs in CPU, which the load of a
# shared machine does not inflate as it does wall times.
#
# Every builder of tenant 0 again, in build order, in one transaction that
# first empties the models (as a first refresh finds them) and is then
# rolled back, without parallel workers (so that the backend's CPU time is
# all of the build's CPU; the refresh itself may use workers): per model the
# rows, the backend's CPU ms (/proc/self/schedstat, bench.backend_cpu_ms())
# and the wall ms.  Without Linux's schedstat the CPU column is empty.
source "$(dirname "$0")/lib.sh"

echo "per model, every builder run again (tenant 0, no parallel workers, rolled back):"
OUT=$(bq <<-'SQL'
	SET client_min_messages = warning;
	SET max_parallel_workers_per_gather = 0;
	BEGIN;
	DO $$
	DECLARE
		r record;
	BEGIN
		FOR r IN SELECT d.model FROM upsell.model_definitions d LOOP
			EXECUTE format('TRUNCATE upsell.%I', r.model);
		END LOOP;
	END
	$$;
	CREATE TEMP TABLE bench_model_cpu (model name, build_order int, row_count bigint, cpu_ms float8, wall_ms float8);
	DO $$
	DECLARE
		m record;
		n bigint;
		c0 float8;
		t0 timestamptz;
	BEGIN
		FOR m IN SELECT * FROM upsell.model_definitions ORDER BY build_order LOOP
			c0 := bench.backend_cpu_ms();
			t0 := clock_timestamp();
			EXECUTE format('SELECT %s($1, $2)', m.builder::regprocedure::regproc) INTO n USING 0::bigint, false;
			INSERT INTO bench_model_cpu
			VALUES (m.model, m.build_order, n, bench.backend_cpu_ms() - c0,
					1000 * extract(epoch FROM clock_timestamp() - t0));
		END LOOP;
	END
	$$;
	SELECT format('  %-24s %10s rows  CPU %8s ms  wall %8s ms', model, row_count,
				  coalesce(round(cpu_ms)::text, '?'), round(wall_ms))
	FROM bench_model_cpu ORDER BY build_order;
	SELECT 'cpu|' || format('model builds without workers: backend CPU %s ms in all (wall %s ms)', coalesce(round(sum(cpu_ms))::text, '?'), round(sum(wall_ms)))
	FROM bench_model_cpu;
	ROLLBACK;
SQL
)
printf '%s\n' "$OUT" | grep -v '^cpu|'
result "$(printf '%s\n' "$OUT" | sed -n 's/^cpu|//p') at load $(cut -d' ' -f1 /proc/loadavg)"
