#!/usr/bin/env bash
# A refresh scheduled with pg_cron every minute runs on its own: the job's run
# is in cron.job_run_details and the refresh in upsell.refresh_log.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell	# cron.database_name of the test cluster
if [ "$(psql_q -d $db -At -c "SELECT current_setting('shared_preload_libraries') ~ 'pg_cron'")" != t ]; then
	echo "pg_cron is not loaded by this server (shared_preload_libraries)"
	exit 77
fi
psql_q -d $db <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP EXTENSION IF EXISTS upsell CASCADE;
CREATE EXTENSION upsell;
DROP SCHEMA IF EXISTS cron_e2e CASCADE;
CREATE SCHEMA cron_e2e;
CREATE TABLE cron_e2e.lines AS
	SELECT o AS order_id, p AS product_id FROM generate_series(1, 50) o, (VALUES (1), (2)) v(p);
SELECT upsell.register_orders('cron_e2e.lines', 'order_id', 'product_id');
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'upsell-refresh';
SELECT cron.schedule('upsell-refresh', '* * * * *', 'CALL upsell.refresh()') > 0 AS scheduled;
SQL

ran=""
for _ in $(seq 1 90); do
	ran=$(psql_q -d $db -At -c "
		SELECT d.status || ' ' || (SELECT count(*) FROM upsell.refresh_log WHERE status = 'ok')
		FROM cron.job_run_details d JOIN cron.job j USING (jobid)
		WHERE j.jobname = 'upsell-refresh' AND d.status IN ('succeeded', 'failed')
		ORDER BY d.start_time DESC LIMIT 1")
	[ -n "$ran" ] && break
	sleep 2
done
psql_q -d $db -c "SELECT cron.unschedule('upsell-refresh')" >/dev/null
echo "cron run: ${ran:-none}"
psql_q -d $db -c "SELECT refresh_id, status, model_rows FROM upsell.refresh_log"
[ "$ran" = "succeeded 1" ] || exit 1
[ "$(psql_q -d $db -At -c "SELECT count(*) FROM upsell.pair_model")" = 2 ] || exit 1
psql_q -d $db -c "DROP SCHEMA cron_e2e CASCADE" -c "DROP EXTENSION upsell CASCADE" >/dev/null
