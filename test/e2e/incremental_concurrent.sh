#!/usr/bin/env bash
# Incremental refresh cannot miss a concurrent commit: a transaction that
# inserted order lines before an incremental refresh started and commits
# while it runs (with order times and ids earlier than lines the refresh
# counts) is folded in by the next incremental refresh, and the models then
# equal a full refresh's.  The same with the lines written in a savepoint
# (a subtransaction, which pg_snapshot does not list): refresh notices that
# the counted lines changed and rebuilds the tenant in full.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_incremental
fresh_database $db
q() { psql_q -d $db -At "$@"; }

q <<'SQL' >/dev/null
SET client_min_messages = warning;
CREATE EXTENSION upsell;
CREATE SCHEMA s;
CREATE TABLE s.lines (order_id bigint, product_id bigint, customer_id bigint, at timestamptz, qty int);
-- 400 orders of 2-3 products among 30, 80 customers
INSERT INTO s.lines
SELECT o, 1 + (o * 7 + k * 11) % 30, o % 80, '2026-01-01'::timestamptz + o * interval '1 hour', 1
FROM generate_series(1, 400) o, generate_series(0, 1 + o % 2) k;
SELECT upsell.register_orders('s.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'at', quantity => 'qty');
CALL upsell.refresh();
-- models as text, for comparing an incremental refresh with a full one; the
-- pair counts as their readers read them, pair by pair with the delta an
-- incremental refresh writes beside the base summed in (a full refresh
-- stores the same counts in the base alone)
CREATE TABLE s.saved (model name, line text);
CREATE FUNCTION s.models_text() RETURNS TABLE (model name, line text) LANGUAGE plpgsql AS $$
DECLARE
	m record;
	t bigint;
BEGIN
	FOR m IN SELECT d.model FROM upsell.models d WHERE d.model NOT IN ('source_state', 'threshold_candidates') LOOP
		IF m.model = 'cooccurrence_chunks' THEN
			FOR t IN SELECT DISTINCT c.tenant_id FROM upsell.cooccurrence_chunks c LOOP
				RETURN QUERY EXECUTE format(
					'SELECT %L::name, concat_ws('' '', %s, p.max_ordered_at, p.max_order_key, x) '
					'FROM %s p, upsell._cooccurrence_pairs_sum(p.state, p.delta, p.lo, p.hi, 1) x',
					m.model, t, upsell._cooccurrence_parts(t));
			END LOOP;
		ELSIF m.model IN ('upgrade_count_model', 'bundle_set_model') THEN
			-- (what the chunks were counted from differs by nature:
			-- 'new lines' folded in, or 'all lines')
			RETURN QUERY EXECUTE format('SELECT %L::name, (to_jsonb(t) - ''counted'')::text FROM upsell.%I t',
										m.model, m.model);
		ELSE
			RETURN QUERY EXECUTE format('SELECT %L::name, t::text FROM upsell.%I t', m.model, m.model);
		END IF;
	END LOOP;
END $$;
SQL

# compare: the models now (after an incremental refresh) against a full refresh
compare() {
	q -c "TRUNCATE s.saved; INSERT INTO s.saved SELECT * FROM s.models_text()" >/dev/null
	q -c "SET client_min_messages = warning" -c "CALL upsell.refresh()" >/dev/null
	q -c "SELECT count(*) FROM ((SELECT * FROM s.saved EXCEPT ALL SELECT * FROM s.models_text())
			UNION ALL (SELECT * FROM s.models_text() EXCEPT ALL SELECT * FROM s.saved)) d"
}

for variant in plain savepoint; do
	base=$(q -c "SELECT max(order_id) FROM s.lines")
	# session A: inserts an order dated before the orders below, commits late
	if [ "$variant" = savepoint ]; then sp="SAVEPOINT a;"; rel="RELEASE SAVEPOINT a;"; else sp=""; rel=""; fi
	psql_q -d $db -At >/dev/null <<-SQL &
		BEGIN;
		SELECT pg_current_xact_id();
		$sp
		INSERT INTO s.lines VALUES ($base + 1, 3, 7, '2026-03-01', 1), ($base + 1, 4, 7, '2026-03-01', 1);
		$rel
		SELECT pg_sleep(4);
		COMMIT;
	SQL
	a=$!
	sleep 1.5
	# session B: later orders, committed before the refresh
	q -c "INSERT INTO s.lines VALUES ($base + 2, 3, 8, '2026-03-02', 1), ($base + 2, 5, 8, '2026-03-02', 1)" >/dev/null
	q -c "SET client_min_messages = warning" -c "CALL upsell.refresh(incremental => true)" >/dev/null
	first=$(q -c "SELECT mode || ' ' || new_lines FROM upsell.source_state")
	wait $a
	out=$(q -c "SET client_min_messages = notice" -c "CALL upsell.refresh(incremental => true)" 2>&1 | grep -o 'rebuilt in full.*' || true)
	second=$(q -c "SELECT mode || ' ' || coalesce(new_lines, 0) FROM upsell.source_state")
	orders=$(q -c "SELECT orders FROM upsell.cooccurrence_model")
	want=$(q -c "SELECT count(DISTINCT order_id) FROM s.lines")
	diffs=$(compare)
	echo "$variant: refresh during the open transaction: $first; after its commit: $second${out:+ ($out)}; orders $orders of $want; models differing from a full refresh: $diffs"
	[ "$orders" = "$want" ] || { echo "an order was missed or counted twice"; exit 1; }
	[ "$diffs" = 0 ] || { echo "incremental differs from full"; exit 1; }
	case "$variant" in
		plain) [ "$first" = "incremental 2" ] && [ "$second" = "incremental 2" ] ||
				{ echo "expected the open transaction's lines folded in by the next incremental refresh"; exit 1; } ;;
		savepoint) [ "$first" = "incremental 2" ] && [ "${second%% *}" = full ] && [ -n "$out" ] ||
				{ echo "expected the late subtransaction detected and the tenant rebuilt in full"; exit 1; } ;;
	esac
done
psql_q -d postgres -c "DROP DATABASE $db"
