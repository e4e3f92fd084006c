#!/usr/bin/env bash
# pg_upgrade --check passes on a cluster with the extension installed and its
# models built (pg_upgrade refuses reg* columns other than regclass, regrole
# and regtype in user tables: their oids do not survive an upgrade).  Two
# throwaway clusters on the ports after $PGPORT: the old one with a shop,
# registered, refreshed and with merchant rules; an empty new one.
source "$(dirname "$0")/../../scripts/lib.sh"

work=$(mktemp -d /tmp/upsell-pg-upgrade.XXXXXX)
chmod 755 "$work"
old_port=$((PGPORT + 4))
new_port=$((PGPORT + 5))
cleanup() {
	if [ -f "$work/old/postmaster.pid" ]; then
		as_cluster_owner "$PGBIN/pg_ctl" -D "$work/old" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
chown postgres: "$work"

for c in old new; do
	as_cluster_owner "$PGBIN/initdb" -D "$work/$c" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
done
as_cluster_owner "$PGBIN/pg_ctl" -D "$work/old" -l "$work/old.log" -w -t 60 \
	-o "-p $old_port -k $work -c listen_addresses='' -c fsync=off" start >/dev/null
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$old_port" -U postgres "$@"; }

q -d postgres -c "CREATE DATABASE shop"
q -d shop >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE SCHEMA s;
CREATE TABLE s.lines (shop int, order_id int, product_id int, customer int, at timestamptz, price numeric);
INSERT INTO s.lines SELECT 1 + o % 2, o, 1 + (o * 7 + k) % 9, o % 5, now() - o * interval '1 day', 5
FROM generate_series(1, 60) o, generate_series(1, 3) k;
CREATE TABLE s.products (shop int, id int, price numeric, cat text);
INSERT INTO s.products SELECT s, i, i, 'c' || i % 2 FROM generate_series(1, 2) s, generate_series(1, 9) i;
SELECT upsell.register_orders('s.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', unit_price => 'price', tenant_id => 'shop');
SELECT upsell.register_products('s.products', 'id', price => 'price', category => 'cat', tenant_id => 'shop');
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (1, 'free_shipping', 30);
INSERT INTO upsell.offers (tenant_id, stage, product_ids) VALUES (1, 'cart', '{2}');
CALL upsell.refresh();
SQL
# a second database with the extension: the roles exist already
q -d postgres -c "CREATE DATABASE shop2"
q -d shop2 -c "CREATE EXTENSION upsell"
rows=$(q -d shop -At -c "SELECT count(*) FROM upsell.cart_offers('{1,3}', NULL, 1)")
echo "offers served before the check: $rows"
[ "$rows" -gt 0 ] || { echo "no offers served"; exit 1; }
as_cluster_owner "$PGBIN/pg_ctl" -D "$work/old" -m fast -w stop >/dev/null

# pg_upgrade writes its logs into the current directory
cd "$work"
if ! as_cluster_owner "$PGBIN/pg_upgrade" --check -b "$PGBIN" -B "$PGBIN" \
		-d "$work/old" -D "$work/new" -p "$old_port" -P "$new_port" -s "$work" >"$work/check.log" 2>&1; then
	cat "$work/check.log"
	find "$work" -name '*.txt' -path '*pg_upgrade*' -exec sh -c 'echo "== $1"; cat "$1"' _ {} \; 2>/dev/null
	echo "pg_upgrade --check refused the cluster"
	exit 1
fi
grep -E 'Clusters are compatible|\*Clusters' "$work/check.log"
