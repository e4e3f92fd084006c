#!/usr/bin/env bash
# upsell.tenant_id set to something that is no bigint before the library
# loads (at the session's start, or by ALTER ROLE ... SET before the first
# install) is kept, and the session serves no tenant: every call fails,
# those naming a tenant too.  Until 1.7 PostgreSQL dropped it with a
# WARNING when the library loaded, and the session, unbound, served any
# tenant a request named.  Each psql below is a new session.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_tenant_setting
fresh_database $db
psql_q -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE TABLE lines (shop int, order_id int, product_id int);
INSERT INTO lines SELECT s, o, p FROM generate_series(1, 2) s, generate_series(1, 40) o,
	LATERAL (VALUES (1 + o % 5), (6 + o % 3)) v(p);
SELECT upsell.register_orders('lines', 'order_id', 'product_id', tenant_id => 'shop');
CALL upsell.refresh();
SQL

fails() {
	local what=$1 setting=$2 call=$3 out
	if out=$("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d $db -c "SET upsell.tenant_id = '$setting'" -c "$call" 2>&1); then
		echo "$what: served: $out"
		exit 1
	fi
	printf '%s\n' "$out" | grep -q 'not a bigint: this session serves no tenant' || { echo "$what: $out"; exit 1; }
	echo "$what: refused"
}
# the C serving path and the SQL one, naming a tenant and not
fails "product page of tenant 2" '1;' "SELECT count(*) FROM upsell.product_page_offers(3, 2)"
fails "cart, no tenant named" 'abc' "SELECT count(*) FROM upsell.cart_offers('{3}')"
fails "recommend_for_cart of tenant 2" 'abc' "SELECT count(*) FROM upsell.recommend_for_cart('{3}', 5, 2)"
# once loaded, such a value is refused at SET, and a bigint binds as before
out=$("$PGBIN/psql" -X -q -d $db -c "SELECT count(*) FROM upsell.product_page_offers(3, 1)" \
	-c "SET upsell.tenant_id = 'abc'" 2>&1 || true)
printf '%s\n' "$out" | grep -q 'invalid value for parameter "upsell.tenant_id"' || { echo "SET after load: $out"; exit 1; }
[ "$("$PGBIN/psql" -X -q -At -d $db -c "SET upsell.tenant_id = 2" \
	-c "SELECT count(*) > 0 FROM upsell.product_page_offers(3)")" = t ] || { echo "a bound session is not served"; exit 1; }
echo "a bigint binds as before"
psql_q -d postgres -c "DROP DATABASE $db"
