#!/usr/bin/env bash
# Registering again while a refresh reads the registered lines does not
# deadlock.  The refresh holds the registration's view until its tenant
# commits, and its last step draws a new serving_state version; the
# registration used to draw that version first (its trigger) and then wait
# for the view, so one of the two got 40P01 (the refresh's tenant lost when
# it was the victim).  Now the registration waits for the view first and
# takes its turn between two tenants: the refresh is ok, the registration
# done, and the models follow it.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_register
fresh_database $db
q() { psql_q -d $db -At "$@"; }

q <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE SCHEMA s;
CREATE TABLE s.lines (shop int, order_id bigint, product_id bigint, qty int);
INSERT INTO s.lines
SELECT s, o, 1 + (o * 7 + k * 11) % 30, 1
FROM generate_series(1, 2) s, generate_series(1, 300) o, generate_series(0, 1 + o % 2) k;
-- a millisecond a line read: the refresh's tenant holds the view for
-- seconds
CREATE VIEW s.slow_lines AS SELECT l.* FROM s.lines l WHERE pg_sleep(0.001) IS NOT NULL;
SELECT upsell.register_orders('s.slow_lines', 'order_id', 'product_id', tenant_id => 'shop');
SQL

start=$(date +%s)
q -c "SET client_min_messages = warning" -c "CALL upsell.refresh()" >/dev/null 2>"$db.refresh.err" &
refresh=$!
sleep 2
# the same registration, with the quantity column now: during tenant 1's build
reg_out=$(q -c "SELECT upsell.register_orders('s.slow_lines', 'order_id', 'product_id', quantity => 'qty', tenant_id => 'shop')" 2>&1) && reg_rc=0 || reg_rc=$?
wait $refresh && refresh_rc=0 || refresh_rc=$?
status=$(q -c "SELECT status || ' ' || tenants_ok || ' ' || tenants_failed || ' ' || coalesce(failures::text, '') FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")
quantity=$(q -c "SELECT quantity FROM upsell.order_source")
echo "registration during the refresh: rc $reg_rc${reg_out:+ ($reg_out)}; refresh rc $refresh_rc, $status; registered quantity column: $quantity; $(( $(date +%s) - start )) s"
cat "$db.refresh.err"; rm -f "$db.refresh.err"
[ "$reg_rc" = 0 ] || { echo "the registration failed"; exit 1; }
[ "$refresh_rc" = 0 ] && [ "${status%% *}" = ok ] || { echo "the refresh did not end ok"; exit 1; }
[ "$quantity" = qty ] || { echo "the registration was not kept"; exit 1; }
# and the next refresh reads the lines as now registered
q -c "SET client_min_messages = warning" -c "CALL upsell.refresh()" >/dev/null
q -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1" | grep -qx ok ||
	{ echo "the refresh after the registration failed"; exit 1; }
psql_q -d postgres -c "DROP DATABASE $db"
