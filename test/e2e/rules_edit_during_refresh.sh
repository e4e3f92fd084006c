#!/usr/bin/env bash
# A merchant's rule edit left open does not stall the refresh, and the
# serving caches still follow both.  Every change of a rules table draws
# serving_state's version under its row's lock, held until the edit's
# transaction ends; until 1.12 every refresh drew the same row's version at
# its end and waited there for any such transaction (an admin's psql session
# with BEGIN and an INSERT into upsell.exclusions stalled the hourly
# refresh until it ended).  A refresh now draws model_state's.
#
# One reader session stays open throughout, so that its cache is the one
# checked: filled before, it must take the refresh's models while the edit
# is still open, and the edit once it commits.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_rules_edit
fresh_database $db
q() { psql_q -d $db -At "$@"; }

q <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE TABLE lines (shop int, order_id int, product_id int);
INSERT INTO lines
SELECT s, o, 1 + (o * 7 + k * 11) % 30
FROM generate_series(1, 2) s, generate_series(1, 300) o, generate_series(0, 1 + o % 2) k;
SELECT upsell.register_orders('lines', 'order_id', 'product_id', tenant_id => 'shop');
CALL upsell.refresh();
SQL

# the reader: one session, each request followed by a marker line
coproc READER { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=0 -d $db 2>&1; }
ask() {		# one statement in the reader's session; prints its output
	local line marker="done-$RANDOM$RANDOM"
	printf '%s\n\\echo %s\n' "$1" "$marker" >&"${READER[1]}"
	while IFS= read -r -t 60 line <&"${READER[0]}"; do
		[ "$line" = "$marker" ] && return 0
		printf '%s\n' "$line"
	done
	echo "the reader did not answer"
	exit 1
}
offers() { ask "SELECT string_agg(o.product_ids[1]::text, ',' ORDER BY o.rank) FROM upsell.cart_offers('{1}', NULL, 1) o WHERE o.offer_type = 'complement';"; }

before=$(offers)
best=${before%%,*}
echo "the reader's complements of product 1 before: $before"
[ -n "$best" ] && [[ ",$before," != *",31,"* ]] || { echo "no complement to exclude"; exit 1; }

# the merchant's edit, left open for 15 s
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d $db \
	-c "BEGIN" -c "INSERT INTO upsell.exclusions (tenant_id, product_id, note) VALUES (1, $best, 'e2e')" \
	-c "SELECT pg_sleep(15)" -c "COMMIT" >/dev/null 2>&1 &
edit=$!
sleep 1
version_before=$(q -c "SELECT config_version FROM upsell.model_state")

# the refresh, with orders that make a new product, 31, product 1's best
# complement
t0=$(date +%s%3N)
q -c "INSERT INTO lines SELECT s, o, p FROM generate_series(1, 2) s, generate_series(301, 400) o, (VALUES (1), (31)) v(p)" \
	-c "SET client_min_messages = warning" -c "SET lock_timeout = '10s'" -c "CALL upsell.refresh()" >/dev/null
ms=$(( $(date +%s%3N) - t0 ))
status=$(q -c "SELECT status FROM upsell.refresh_log ORDER BY refresh_id DESC LIMIT 1")
open=$(kill -0 $edit 2>/dev/null && echo open || echo ended)
echo "refresh while the edit was open: $status in $ms ms; the edit: $open"
[ "$status" = ok ] || { echo "the refresh did not end ok"; exit 1; }
[ "$open" = open ] || { echo "the edit ended before the refresh: it waited for it"; exit 1; }
[ "$(q -c "SELECT config_version > $version_before FROM upsell.model_state")" = t ] ||
	{ echo "the refresh drew no new version of the models"; exit 1; }

# the reader takes the new models (its cache keyed by their version) while
# the edit is open (its exclusion not visible yet)
during=$(offers)
fresh=$(q -c "SELECT string_agg(o.product_ids[1]::text, ',' ORDER BY o.rank) FROM upsell.cart_offers('{1}', NULL, 1) o WHERE o.offer_type = 'complement'")
echo "the reader's complements after the refresh, the edit open: $during (a new session: $fresh)"
[ "$during" = "$fresh" ] && [[ ",$during," == *",31,"* ]] ||
	{ echo "the reader's cache kept the models of before the refresh"; exit 1; }
[[ ",$during," == *",$best,"* ]] || { echo "product $best left before the edit committed"; exit 1; }

wait $edit || { echo "the merchant's edit failed"; exit 1; }
after=$(offers)
echo "the reader's complements after the edit committed: $after"
[[ ",$after," != *",$best,"* ]] || { echo "the reader still offers the excluded product $best"; exit 1; }

printf '\\q\n' >&"${READER[1]}"
wait "$READER_PID" 2>/dev/null || true
psql_q -d postgres -c "DROP DATABASE $db"
