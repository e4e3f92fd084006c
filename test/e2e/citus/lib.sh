# Helpers for the parts of test/e2e/citus.sh (sourced).  The driver exports
# PGHOST/PGPORT/PGUSER for the coordinator and CITUS_PG_CONFIG; the
# distributed database is upsell, the single-node one upsell_single.
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib.sh"
source "$REPO/scripts/citus.sh"
CITUS_PG_CONFIG=${CITUS_PG_CONFIG:-$CITUS_RUN/pg/$(cat "$CITUS_RUN/pg/pg_config.path")}
CITUS_PGBIN=$("$CITUS_PG_CONFIG" --bindir)
GEN=$REPO/test/bench/gen_orders

# cq DB [psql args]: unaligned, tuples only, stop on error
cq() {
	local db=$1
	shift
	citus_psql -A -t -d "$db" "$@"
}

# A fresh single-node database (no citus extension) with upsell.
fresh_single_db() {
	citus_psql -d postgres -c "DROP DATABASE IF EXISTS upsell_single" -c "CREATE DATABASE upsell_single"
	cq upsell_single -c "SET client_min_messages = warning" -c "CREATE EXTENSION upsell" >/dev/null
}

# same_answer LABEL SQL: the rows of SQL on the distributed database and on
# the single-node one are identical (SQL must order its rows).
same_answer() {
	local label=$1 sql=$2 a b
	a=$(mktemp)
	b=$(mktemp)
	cq upsell -c "$sql" >"$a"
	cq upsell_single -c "$sql" >"$b"
	if ! cmp -s "$a" "$b"; then
		echo "DIFFERENT: $label"
		diff "$a" "$b" | cut -c1-300 | head -20
		rm -f "$a" "$b"
		return 1
	fi
	echo "same on Citus and single node: $label ($(wc -l <"$a") rows)"
	if [ ! -s "$a" ]; then
		echo "no rows: $label"
		rm -f "$a" "$b"
		return 1
	fi
	rm -f "$a" "$b"
}

# load_shop DB LINES PRODUCTS DISTRIBUTE [TENANTS]: schema shop with the
# generated products and order lines (test/bench/gen_orders), registered with
# upsell.  DISTRIBUTE is the SQL run between creating the tables and loading
# them (create_distributed_table ...; nothing on the single-node database).
# With TENANTS > 0, both tables have a tenant_id first: order o belongs to
# tenant o % TENANTS + 1, and every tenant has the whole catalog.
load_shop() {
	local db=$1 lines=$2 products=$3 distribute=$4 tenants=${5:-0} tcol="" treg=""
	if [ "$tenants" -gt 0 ]; then
		tcol="tenant_id bigint NOT NULL,"
		treg=", tenant_id => 'tenant_id'"
	fi
	cq "$db" >/dev/null <<-SQL
		SET client_min_messages = warning;
		DROP SCHEMA IF EXISTS shop CASCADE;
		CREATE SCHEMA shop;
		CREATE TABLE shop.products ($tcol
			product_id bigint NOT NULL, category text, variant_group text,
			price numeric(10,2), in_stock boolean, unit_size numeric, unit_name text);
		CREATE TABLE shop.order_lines ($tcol
			order_id bigint NOT NULL, product_id bigint NOT NULL, customer_id bigint NOT NULL,
			ordered_at timestamptz NOT NULL, quantity int NOT NULL, unit_price numeric(10,2) NOT NULL);
		$distribute
	SQL
	if [ "$tenants" -gt 0 ]; then
		"$GEN" -n "$lines" -p "$products" products |
			awk -v n="$tenants" '{ for (t = 1; t <= n; t++) print t "\t" $0 }' |
			cq "$db" -c "COPY shop.products FROM STDIN"
		"$GEN" -n "$lines" -p "$products" lines |
			awk -v n="$tenants" -F '\t' '{ print ($1 % n) + 1 "\t" $0 }' |
			cq "$db" -c "COPY shop.order_lines FROM STDIN"
	else
		"$GEN" -n "$lines" -p "$products" products | cq "$db" -c "COPY shop.products FROM STDIN"
		"$GEN" -n "$lines" -p "$products" lines | cq "$db" -c "COPY shop.order_lines FROM STDIN"
	fi
	cq "$db" >/dev/null <<-SQL
		SET client_min_messages = warning;
		SELECT upsell.register_orders('shop.order_lines', 'order_id', 'product_id',
			customer_id => 'customer_id', ordered_at => 'ordered_at',
			quantity => 'quantity', unit_price => 'unit_price'$treg);
		SELECT upsell.register_products('shop.products', 'product_id',
			price => 'price', category => 'category', variant_group => 'variant_group',
			in_stock => 'in_stock', unit_size => 'unit_size', unit_name => 'unit_name'$treg);
		ANALYZE shop.products;
		ANALYZE shop.order_lines;
	SQL
}

# same_models: every model in upsell.models has the same rows on both (all
# columns but the time of the build).
same_models() {
	local m cols rc=0
	# (shopify_product_model is built from a Shopify catalog only: empty here)
	for m in $(cq upsell -c "SELECT model FROM upsell.models WHERE model <> 'shopify_product_model' ORDER BY build_order"); do
		cols=$(cq upsell -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
			FROM pg_attribute WHERE attrelid = 'upsell.$m'::regclass AND attnum > 0
			AND NOT attisdropped AND attname NOT IN ('built_at', 'snapshot')")
		same_answer "model $m" "SELECT ROW($cols)::text FROM upsell.$m t ORDER BY 1" || rc=1
	done
	return $rc
}

# same_script LABEL: like same_answer, for the statements on stdin, sent one
# by one (as an application sends its requests; Citus delegates a call of a
# distributed function only when it is its statement's whole FROM).
same_script() {
	local label=$1 a b s
	s=$(mktemp)
	a=$(mktemp)
	b=$(mktemp)
	cat >"$s"
	cq upsell -f "$s" >"$a"
	cq upsell_single -f "$s" >"$b"
	if ! cmp -s "$a" "$b"; then
		echo "DIFFERENT: $label"
		diff "$a" "$b" | cut -c1-300 | head -20
		rm -f "$s" "$a" "$b"
		return 1
	fi
	echo "same on Citus and single node: $label ($(wc -l <"$a") rows from $(grep -c . "$s") statements)"
	if [ ! -s "$a" ]; then
		echo "no rows: $label"
		rm -f "$s" "$a" "$b"
		return 1
	fi
	rm -f "$s" "$a" "$b"
}

# The bytes the coordinator's processes receive from the workers: every
# 0.2 s, each of their TCP sockets to a worker port (ss), by inode, its
# bytes_received less what it had received when sampling began; summed
# into $1.  Runs until killed.
coordinator_rx() {
	local out=$1 postmaster
	postmaster=$(head -1 "$CITUS_RUN/node0/postmaster.pid")
	declare -A first=() last=()
	local ino pid bytes total k pids
	while :; do
		pids=" $(pgrep -P "$postmaster" | tr '\n' ' ') "
		while read -r ino pid bytes; do
			case "$pids" in *" $pid "*) ;; *) continue ;; esac
			[ -n "${first[$ino]+x}" ] || first[$ino]=$([ "${started:-0}" = 1 ] && echo 0 || echo "$bytes")
			last[$ino]=$bytes
		done < <(ss -tinpeH state established "( dport = :$((CITUS_PORT + 1)) or dport = :$((CITUS_PORT + 2)) )" |
			awk '/^[^ \t]/ { match($0, /pid=[0-9]+/); pid = substr($0, RSTART + 4, RLENGTH - 4)
							 match($0, /ino:[0-9]+/); ino = substr($0, RSTART + 4, RLENGTH - 4); next }
				 { b = 0; if (match($0, /bytes_received:[0-9]+/)) b = substr($0, RSTART + 15, RLENGTH - 15)
				   print ino, pid, b }')
		started=1
		total=0
		for k in "${!last[@]}"; do total=$((total + last[$k] - first[$k])); done
		# (whole, by rename: the reader never sees a half-written file)
		echo "$total" >"$out.tmp" && mv -f "$out.tmp" "$out"
		# asked to stop: after this sample, which follows the command
		[ -e "$out.stop" ] && return 0
		sleep 0.2
	done
}

# with_coordinator_rx CMD...: runs CMD (output to stdout, in this shell)
# while coordinator_rx samples; sets RX to the bytes the coordinator
# received from the workers meanwhile.  Needs ss (iproute2).
with_coordinator_rx() {
	local f s
	command -v ss >/dev/null || { echo "ss (iproute2) is missing: cannot count the bytes" >&2; return 1; }
	f=$(mktemp)
	coordinator_rx "$f" &
	s=$!
	sleep 0.5
	"$@"
	sleep 0.5
	# the sampler ends after its next sample (under load a kill could land
	# between two writes); killed only if it does not within a minute
	touch "$f.stop"
	for _ in $(seq 600); do kill -0 "$s" 2>/dev/null || break; sleep 0.1; done
	kill "$s" 2>/dev/null || true
	wait "$s" 2>/dev/null || true
	RX=$(cat "$f")
	rm -f "$f" "$f.stop" "$f.tmp"
}
