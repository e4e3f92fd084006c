#!/usr/bin/env bash
# The storefront served from a hot standby (README, "Serving from a hot
# standby"): a primary of its own with the electronics shop, a streaming
# standby made by pg_basebackup.  Checks that
#   - every serving call of the digest below runs on the standby (read-only:
#     no write, sequence, temporary table or lock a standby refuses) and,
#     after replay, answers exactly as the primary;
#   - what writes is refused there with 25006, not served wrongly;
#   - pgbench on the standby (2 clients) while the primary takes new orders,
#     an incremental and a full refresh and a rule edit: no failed request,
#     no empty product page;
#   - afterwards the standby's answers equal the primary's again, the rule
#     edit included.
source "$(dirname "$0")/../../scripts/lib.sh"

work=$(mktemp -d /tmp/upsell-standby.XXXXXX)
chmod 755 "$work"
chown postgres: "$work"
pport=$((PGPORT + 6))
sport=$((PGPORT + 7))
cleanup() {
	for d in standby primary; do
		if [ -f "$work/$d/postmaster.pid" ]; then
			as_cluster_owner "$PGBIN/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

as_cluster_owner "$PGBIN/initdb" -D "$work/primary" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
as_cluster_owner "$PGBIN/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w -t 60 \
	-o "-p $pport -k $work -c listen_addresses='' -c fsync=off -c wal_level=replica" start >/dev/null
p() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$pport" -U postgres -d shop "$@"; }
s() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$sport" -U postgres -d shop "$@"; }
"$PGBIN/psql" -X -q -h "$work" -p "$pport" -U postgres -d postgres -c "CREATE DATABASE shop"
p -f scripts/load_electronics.sql >/dev/null 2>&1
p -f scripts/demo_setup.sql >/dev/null 2>&1
p >/dev/null <<'SQL'
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('gift', 300, 'a gift');
INSERT INTO upsell.experiments (experiment, stage, description) VALUES ('widget', 'cart', 'standby test');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('widget', 'control', 50, '{}'), ('widget', 'complements', 50, '{complement}');
SQL

as_cluster_owner "$PGBIN/pg_basebackup" -h "$work" -p "$pport" -U postgres -D "$work/standby" -R -X stream
as_cluster_owner "$PGBIN/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -t 60 \
	-o "-p $sport -k $work -c listen_addresses='' -c hot_standby=on -c hot_standby_feedback=on" start >/dev/null
[ "$(s -At -c "SELECT pg_is_in_recovery()")" = t ] || { echo "the standby is not in recovery"; exit 1; }

caught_up() {
	local lsn i
	lsn=$(p -At -c "SELECT pg_current_wal_lsn()")
	for i in $(seq 1 120); do
		[ "$(s -At -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
		sleep 0.5
	done
	echo "the standby did not replay up to $lsn in 60 s"
	exit 1
}

# Every storefront call of the shop's 19 products, and of a cart, an order
# and a customer per product; md5 of all the rows (fixed times: the
# decaying weights of the email functions depend on them).
digest="
WITH pr AS (SELECT m.product_id AS id FROM upsell.product_model m ORDER BY 1),
cu AS (SELECT DISTINCT ON (l.product_id) l.customer_id AS id, l.product_id
	   FROM upsell.order_lines l ORDER BY l.product_id, l.customer_id),
answers AS (
	SELECT 'page ' || pr.id || ' ' || o::text AS a FROM pr, upsell.product_page_offers(pr.id) o
	UNION ALL SELECT 'cart ' || pr.id || ' ' || o::text FROM pr, upsell.cart_offers(ARRAY[pr.id, 18], ARRAY[1, 2]) o
	UNION ALL SELECT 'order ' || pr.id || ' ' || o::text
		FROM pr, upsell.post_purchase_offers(ARRAY[pr.id], at => '2020-01-15') o
	UNION ALL SELECT 'json ' || pr.id || ' ' || upsell.offers_json('cart', pg_catalog.jsonb_build_object('items',
		pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('product_id', pr.id, 'quantity', 1))))::text FROM pr
	UNION ALL SELECT 'fbt ' || pr.id || ' ' || r::text FROM pr, upsell.recommend_for_cart(ARRAY[pr.id], 4) r
	UNION ALL SELECT 'gap ' || pr.id || ' ' || g::text FROM pr, upsell.gap_fillers(ARRAY[pr.id]) g
	UNION ALL SELECT 'up ' || pr.id || ' ' || u::text FROM pr, upsell.upgrade_candidates(pr.id) u
	UNION ALL SELECT 'bundle ' || pr.id || ' ' || b::text FROM pr, upsell.bundle_offers(pr.id) b
	UNION ALL SELECT 'tier ' || pr.id || ' ' || q::text FROM pr, upsell.quantity_offer(pr.id, 2) q
	UNION ALL SELECT 'customer ' || cu.id || ' ' || r::text
		FROM cu, upsell.recommend_for_customer(cu.id, 5, at => '2020-01-15') r
	UNION ALL SELECT 'email ' || cu.id || ' ' || e::text FROM cu, upsell.email_sequence(cu.id, at => '2020-01-15') e
	UNION ALL SELECT 'assign ' || pr.id || ' ' || upsell.assign('widget', 'unit-' || pr.id) FROM pr)
SELECT pg_catalog.count(*) || ' ' || pg_catalog.md5(pg_catalog.string_agg(a, '|' ORDER BY a)) FROM answers"

caught_up
before=$(p -At -c "$digest")
on_standby=$(s -At -c "$digest")
echo "answers on the primary: $before; on the standby: $on_standby"
[ "${before%% *}" -gt 500 ] || { echo "too few answers to compare"; exit 1; }
[ "$before" = "$on_standby" ] || { echo "the standby answers differently"; exit 1; }

# What writes belongs to the primary: refused with 25006 on the standby.
for call in "SELECT upsell.record_event('{\"event\": \"click\", \"unit_id\": \"u1\", \"stage\": \"cart\", \"type\": \"complement\", \"product_id\": 18}')" \
	"CALL upsell.refresh()"; do
	err=$(s -c "\\set VERBOSITY verbose" -c "$call" 2>&1 || true)
	printf '%s\n' "$err" | grep -q 'ERROR:  25006' || { echo "on the standby, '$call' gave: $err"; exit 1; }
done

# pgbench on the standby while the primary changes: new orders (an
# incremental refresh), a rule edit, a full refresh.
cat >"$work/reader.sql" <<'SQL'
\set pid random(1, 19)
SELECT 1 / pg_catalog.count(*) FROM upsell.product_page_offers(:pid);   -- fails when empty
SELECT pg_catalog.count(*) FROM upsell.cart_offers(ARRAY[:pid, 18]::bigint[], ARRAY[1, 2]);
SELECT pg_catalog.count(*) FROM upsell.post_purchase_offers(ARRAY[:pid]::bigint[]);
SELECT upsell.offers_json('product_page', pg_catalog.jsonb_build_object('product_id', :pid));
SELECT pg_catalog.count(*) FROM upsell.gap_fillers(ARRAY[:pid]::bigint[]);
SQL
chown postgres: "$work/reader.sql"
"$PGBIN/pgbench" -n -h "$work" -p "$sport" -U postgres -c 2 -T 30 -f "$work/reader.sql" shop \
	>"$work/pgbench.out" 2>&1 &
bench=$!
sleep 2
p >/dev/null <<'SQL'
SET client_min_messages = warning;
INSERT INTO shop.order_lines (order_id, product_id, customer, ordered_at, quantity, unit_price)
SELECT 900000000 + g, 1 + g % 19, 'new customer ' || g, timestamp '2020-01-01 12:00' + g * interval '1 minute', 1, 10
FROM generate_series(1, 2000) g;
CALL upsell.refresh(incremental => true);
INSERT INTO upsell.stage_settings (stage, max_offers) VALUES ('cart', 2);
CALL upsell.refresh();
SQL
rc=0
wait $bench || rc=$?
cat "$work/pgbench.out"
[ "$rc" = 0 ] || { echo "pgbench on the standby failed (exit $rc)"; exit 1; }
grep -q 'aborted' "$work/pgbench.out" && { echo "a standby reader was aborted"; exit 1; }
tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
[ "${tx:-0}" -gt 0 ] || { echo "no transaction ran on the standby"; exit 1; }

caught_up
after=$(p -At -c "$digest")
on_standby=$(s -At -c "$digest")
echo "after the changes, on the primary: $after; on the standby: $on_standby"
[ "$after" != "$before" ] || { echo "the changes changed no answer"; exit 1; }
[ "$after" = "$on_standby" ] || { echo "the standby answers differently after the changes"; exit 1; }
[ "$(s -At -c "SELECT pg_catalog.count(*) FROM upsell.cart_offers(ARRAY[1, 18]::bigint[])")" = 2 ] ||
	{ echo "the standby does not apply the rule edit"; exit 1; }
echo "standby: ok ($tx requests during the changes, none failed)"
