#!/usr/bin/env bash
# Registrations, merchant rules and the registration views survive
# pg_dump/pg_restore; a refresh after the restore serves the same answers.
source "$(dirname "$0")/../../scripts/lib.sh"

src=upsell_e2e_dump
dst=upsell_e2e_restore
fresh_database $src $dst

psql_q -d $src <<'SQL'
CREATE EXTENSION upsell;
CREATE SCHEMA s;
CREATE TABLE s.lines (order_id int, product_id int);
INSERT INTO s.lines SELECT o, p FROM generate_series(1, 20) o, (VALUES (1), (2)) v(p);
INSERT INTO s.lines SELECT o, p FROM generate_series(21, 30) o, (VALUES (1), (3)) v(p);
CREATE TABLE s.products (id int, cat text);
INSERT INTO s.products VALUES (1, 'a'), (2, 'b'), (3, 'b');
SELECT upsell.register_orders('s.lines', 'order_id', 'product_id');
SELECT upsell.register_products('s.products', 'id', category => 'cat');
INSERT INTO upsell.exclusions (product_id) VALUES (3);
INSERT INTO upsell.offers (stage, product_ids) VALUES ('cart', '{1}');
INSERT INTO upsell.volume_tiers (product_id, min_quantity, percent_off) VALUES (1, 3, 5);
INSERT INTO upsell.thresholds (kind, amount) VALUES ('free_shipping', 50);
INSERT INTO upsell.consumables (product_id, consumable) VALUES (2, true);
SET client_min_messages = warning;
CALL upsell.refresh();
SQL
before=$(psql_q -d $src -At -c "SELECT string_agg(product_id::text, ',' ORDER BY rank) FROM upsell.recommend_for_cart('{1}', 3)")

dump=$(mktemp)
"$PGBIN/pg_dump" -Fc -d $src -f "$dump"
"$PGBIN/pg_restore" -d $dst "$dump"
rm -f "$dump"

config=$(psql_q -d $dst -At -c "SELECT (SELECT relation::text FROM upsell.order_source) || ' ' || (SELECT relation::text FROM upsell.product_source) || ' ' || (SELECT count(*) FROM upsell.exclusions) || ' ' || (SELECT count(*) FROM upsell.order_lines)")
echo "restored config: $config"
[ "$config" = "s.lines s.products 1 60" ] || { echo "registration not restored"; exit 1; }
psql_q -d $dst -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
# identities continue after the restored rows
psql_q -d $dst -c "INSERT INTO upsell.exclusions (product_id) VALUES (99)" \
	-c "INSERT INTO upsell.offers (stage, product_ids) VALUES ('cart', '{2}')" \
	-c "INSERT INTO upsell.volume_tiers (product_id, min_quantity, percent_off) VALUES (2, 3, 5)" \
	-c "INSERT INTO upsell.thresholds (kind, amount) VALUES ('gift', 80)" \
	-c "INSERT INTO upsell.consumables (product_id, consumable) VALUES (3, true)"
# every identity of a configuration table is kept by pg_dump
missing=$(psql_q -d $dst -At -c "SELECT string_agg(c.relname, ' ') FROM pg_extension e, unnest(e.extconfig) t(oid) JOIN pg_class c ON c.oid = t.oid, pg_attribute a WHERE e.extname = 'upsell' AND a.attrelid = t.oid AND a.attidentity <> '' AND NOT pg_get_serial_sequence(c.oid::regclass::text, a.attname)::regclass = ANY (e.extconfig)")
[ -z "$missing" ] || { echo "identity sequences not dumped: $missing"; exit 1; }
after=$(psql_q -d $dst -At -c "SELECT string_agg(product_id::text, ',' ORDER BY rank) FROM upsell.recommend_for_cart('{1}', 3)")
echo "before: $before  after: $after"
[ -n "$before" ] && [ "$before" = "$after" ] || { echo "answers differ after restore"; exit 1; }
for db in $src $dst; do psql_q -d postgres -c "DROP DATABASE $db"; done
