#!/usr/bin/env bash
# Experiments, their exposures (including some recorded before a forced weight
# change) and offer events survive pg_dump/pg_restore, and the results read
# the same afterwards; so does an experiment whose weights are all zero (rows
# from before 1.9, or loaded with triggers off): the check at commit warns and
# keeps them (an error there lost the variants of every experiment, and then
# their exposures failed their foreign key).
source "$(dirname "$0")/../../scripts/lib.sh"

src=upsell_e2e_exp_dump
dst=upsell_e2e_exp_restore
fresh_database $src $dst

psql_q -d $src <<'SQL'
CREATE EXTENSION upsell;
CREATE SCHEMA s;
CREATE TABLE s.lines (order_id int, product_id int, customer_id int, at timestamptz, price numeric);
INSERT INTO s.lines SELECT g, 10 + g % 3, g % 150, '2026-01-03'::timestamptz + g * interval '1 minute', 10 + g % 7
FROM generate_series(1, 300) g;
SELECT upsell.register_orders('s.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'at', unit_price => 'price');
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('dumped', '2026-01-01');
INSERT INTO upsell.experiment_variants VALUES ('dumped', 'control', 1, '{}'), ('dumped', 'fbt', 1, '{complement}');
SELECT count(upsell.record_exposure('dumped', g::text, 'cart', NULL, '2026-01-02')) FROM generate_series(1, 100) g;
SELECT upsell.set_weights('dumped', '{"control": 1, "fbt": 3}', force => true);
SELECT count(upsell.record_exposure('dumped', g::text, 'cart', NULL, '2026-01-02')) FROM generate_series(101, 200) g;
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, occurred_at)
SELECT g::text, 'complement', 10 + g % 3, 'add', '2026-01-02 12:00' FROM generate_series(1, 50) g;
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('zero', '2026-01-01');
SET session_replication_role = replica;
INSERT INTO upsell.experiment_variants VALUES ('zero', 'control', 0, '{}'), ('zero', 'fbt', 0, '{complement}');
RESET session_replication_role;
SELECT count(upsell.record_exposure('zero', g::text, 'cart', NULL, '2026-01-02')) FROM generate_series(1, 5) g;
SQL
query="SELECT string_agg(format('%s:%s:%s:%s:%s', variant, units, orders, revenue, attach_rate), ' ' ORDER BY variant) FROM upsell.experiment_results('dumped')"
before=$(psql_q -d $src -At -c "SET client_min_messages = error" -c "$query")

dump=$(mktemp)
"$PGBIN/pg_dump" -Fc -d $src -f "$dump"
"$PGBIN/pg_restore" -d $dst "$dump"
# and in one transaction (the check runs at its commit)
psql_q -d postgres -c "DROP DATABASE IF EXISTS ${dst}_1" -c "CREATE DATABASE ${dst}_1"
"$PGBIN/pg_restore" --single-transaction -d ${dst}_1 "$dump"
rm -f "$dump"

counts=$(psql_q -d $dst -At -c "SELECT (SELECT count(*) FROM upsell.experiments) || ' ' || (SELECT count(*) FROM upsell.experiment_variants) || ' ' || (SELECT count(*) FROM upsell.exposures) || ' ' || (SELECT count(*) FROM upsell.offer_events)")
echo "restored: $counts"
[ "$counts" = "2 4 205 50" ] || { echo "experiments not restored"; exit 1; }
counts=$(psql_q -d ${dst}_1 -At -c "SELECT (SELECT count(*) FROM upsell.experiments) || ' ' || (SELECT count(*) FROM upsell.experiment_variants) || ' ' || (SELECT count(*) FROM upsell.exposures) || ' ' || (SELECT count(*) FROM upsell.offer_events)")
echo "restored in one transaction: $counts"
[ "$counts" = "2 4 205 50" ] || { echo "experiments not restored by pg_restore --single-transaction"; exit 1; }
after=$(psql_q -d $dst -At -c "SET client_min_messages = error" -c "$query")
echo "before: $before"
echo "after:  $after"
[ -n "$before" ] && [ "$before" = "$after" ] || { echo "results differ after restore"; exit 1; }
# new exposures get identities after the restored ones
psql_q -d $dst -At -c "SELECT upsell.record_exposure('dumped', '999', 'cart')" >/dev/null
for db in $src $dst ${dst}_1; do psql_q -d postgres -c "DROP DATABASE $db"; done
