#!/usr/bin/env bash
# A refresh that ended without recording it (its session terminated) is
# marked interrupted by the next refresh, which looks for the run's advisory
# lock: in its own database only.  Each database numbers its refreshes from
# 1, so refresh 1 running in another database must not keep this one's
# refresh 1 "running" (it did until 1.7).
source "$(dirname "$0")/../../scripts/lib.sh"

fresh_database upsell_e2e_reap_a upsell_e2e_reap_b
for db in upsell_e2e_reap_a upsell_e2e_reap_b; do
	psql_q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION upsell"
done
# database a: refresh 1 "running" in a session that has ended (pid 0 is no
# backend's); database b: its own refresh 1's lock held by a live session
psql_q -d upsell_e2e_reap_a -c "INSERT INTO upsell.refresh_log (started_at, incremental, status, backend_pid)
	VALUES (now(), false, 'running', 0)"
id=$(psql_q -d upsell_e2e_reap_a -At -c "SELECT refresh_id FROM upsell.refresh_log")
class=$(psql_q -d upsell_e2e_reap_a -At -c "SELECT upsell._refresh_lock_class('run')")
"$PGBIN/psql" -X -q -d upsell_e2e_reap_b -c "SELECT pg_advisory_lock($class, $id)" -c "SELECT pg_sleep(30)" \
	>/dev/null 2>&1 &
holder=$!
for i in $(seq 1 100); do
	[ "$(psql_q -d upsell_e2e_reap_a -At -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND granted AND classid = $class::oid AND objid = $id::oid AND objsubid = 2")" = 1 ] && break
	sleep 0.1
done
psql_q -d upsell_e2e_reap_a -c "SELECT upsell._refresh_reap()" >/dev/null
status=$(psql_q -d upsell_e2e_reap_a -At -c "SELECT status FROM upsell.refresh_log WHERE refresh_id = $id")
psql_q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE datname = 'upsell_e2e_reap_b' AND pid <> pg_backend_pid()" >/dev/null
wait $holder 2>/dev/null || true
echo "refresh $id of database a, while database b holds its refresh $id's lock: $status"
[ "$status" = interrupted ] || exit 1
psql_q -d postgres -c "DROP DATABASE upsell_e2e_reap_a" -c "DROP DATABASE upsell_e2e_reap_b"
