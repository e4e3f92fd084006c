#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.0, as a shop would do it:
# 1.0 built from its release commit and installed in a private copy of this
# PostgreSQL, the electronics shop registered with merchant rules, an
# experiment with exposures and events, and built models; then 1.1's files
# installed over it and the extension updated.  Checks that
#   - upsell--1.0.sql is exactly what the 1.0 release built;
#   - the updated extension's objects equal a fresh 1.1 install's
#     (test/upgrade/describe.sql, every definition, no oids);
#   - every configuration row of 1.0 survives, and identities continue;
#   - after a refresh, the offers of every funnel stage equal a fresh
#     install's.
# Needs the repository's history (the 1.0 commit); skips without it.
source "$(dirname "$0")/../../scripts/lib.sh"

RELEASE_1_0=6cd9356ac6be3384a47ade7c1c973c5e2b8f656d
if ! git -C "$REPO" cat-file -e "$RELEASE_1_0^{commit}" 2>/dev/null; then
	echo "skipped: this clone lacks the 1.0 release commit $RELEASE_1_0 (a shallow clone?)"
	exit 77
fi

work=$(mktemp -d /tmp/upsell-upgrade.XXXXXX)
chmod 755 "$work"
port=$((PGPORT + 3))
pgcopy=
cleanup() {
	if [ -n "$pgcopy" ] && [ -f "$work/data/postmaster.pid" ]; then
		as_cluster_owner "$pgcopy/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	[ -n "${UPSELL_KEEP_UPGRADE_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# 1. The frozen script is what the 1.0 release built.
for f in $(git -C "$REPO" ls-tree --name-only "$RELEASE_1_0" src/sql/ | sort); do
	git -C "$REPO" show "$RELEASE_1_0:$f"
done >"$work/released.sql"
cmp -s "$work/released.sql" "$REPO/upsell--1.0.sql" ||
	{ echo "upsell--1.0.sql differs from what release $RELEASE_1_0 built"; exit 1; }

# 2. A private copy of this PostgreSQL installation (installations are
# relocatable: their directories keep their places relative to bindir).
bindir=$("$PG_CONFIG" --bindir)
dirs=("$bindir" "$("$PG_CONFIG" --sharedir)" "$("$PG_CONFIG" --pkglibdir)" \
	"$("$PG_CONFIG" --includedir)" "$("$PG_CONFIG" --includedir-server)")
prefix=$bindir
for d in "${dirs[@]}"; do
	while [ "${d#"$prefix"/}" = "$d" ]; do prefix=$(dirname "$prefix"); done
done
for d in "${dirs[@]}"; do
	mkdir -p "$work/pg/$(dirname "${d#"$prefix"/}")"
	[ -e "$work/pg/${d#"$prefix"/}" ] || cp -a "$d" "$work/pg/${d#"$prefix"/}"
done
pgcopy=$work/pg/${bindir#"$prefix"/}
[ "$("$pgcopy/pg_config" --pkglibdir)" = "$work/pg/$("$PG_CONFIG" --pkglibdir | sed "s|^$prefix/||")" ] ||
	{ echo "the copy of PostgreSQL in $work/pg is not relocatable"; exit 1; }

# 3. upsell 1.0, built from its release.
mkdir "$work/src-1.0"
git -C "$REPO" archive "$RELEASE_1_0" | tar -x -C "$work/src-1.0"
make -s -C "$work/src-1.0" PG_CONFIG="$pgcopy/pg_config" install >"$work/build-1.0.log" 2>&1 ||
	{ tail -20 "$work/build-1.0.log"; echo "building 1.0 failed"; exit 1; }

chown -R postgres: "$work"
as_cluster_owner "$pgcopy/initdb" -D "$work/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
as_cluster_owner "$pgcopy/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 \
	-o "-p $port -k $work -c listen_addresses='' -c fsync=off -c shared_buffers=256MB" start >/dev/null
q() { "$pgcopy/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres "$@"; }

# 4. A 1.0 shop: the electronics data and the demo's set-up as 1.0 had them,
# an experiment with variants, exposures and offer events, built models.
q -d postgres -c "CREATE DATABASE upgraded"
# (1.0's loader, with today's parsing of the lines: the same rows, without
# the capturing regexp_match that took minutes, see scripts/load_electronics.sql)
parse_block() { awk '/^CREATE TEMP TABLE parsed AS/ { on = 1 } on { print } on && /;$/ { exit }' "$@"; }
git -C "$REPO" show "$RELEASE_1_0:scripts/load_electronics.sql" >"$work/load-1.0.sql"
parse_block "$REPO/scripts/load_electronics.sql" >"$work/parse.sql"
awk -v parse="$work/parse.sql" '
	/^CREATE TEMP TABLE parsed AS/ { while ((getline l < parse) > 0) print l; skip = 1 }
	skip { if (/;$/) skip = 0; next }
	{ print }' "$work/load-1.0.sql" >"$work/load.sql"
grep -q "split_part(line, ',', 1)" "$work/load.sql" && ! grep -q regexp_match "$work/load.sql" ||
	{ echo "could not replace the parsing of 1.0's loader"; exit 1; }
git -C "$REPO" show "$RELEASE_1_0:scripts/demo_setup.sql" >"$work/setup.sql"
(cd "$REPO" && q -d upgraded -f "$work/load.sql") >/dev/null 2>&1
q -d upgraded -f "$work/setup.sql" >"$work/setup.log" 2>&1 || { tail -20 "$work/setup.log"; exit 1; }
q -d upgraded >/dev/null <<'SQL'
SET client_min_messages = warning;
INSERT INTO upsell.experiments (experiment, stage, description) VALUES ('cart_widget', 'cart', 'upgrade test');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('cart_widget', 'control', 50, '{}'), ('cart_widget', 'complements', 50, '{complement}');
INSERT INTO upsell.exposures (experiment, unit_id, stage)
	SELECT 'cart_widget', 'customer-' || g, 'cart' FROM generate_series(1, 40) g;
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, stage, experiment)
	SELECT 'customer-' || g, 'complement', 1, 'add', 'cart', 'cart_widget' FROM generate_series(1, 10) g;
INSERT INTO upsell.exclusions (product_id, note) VALUES (2, 'upgrade test');
INSERT INTO upsell.offers (stage, product_ids, reason) VALUES ('cart', '{3}', 'upgrade test');
CALL upsell.refresh();
SQL
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = 1.0 ] ||
	{ echo "the shop is not on 1.0"; exit 1; }

kept="order_source product_source exclusions volume_tiers thresholds consumables cart_source
	experiments experiment_variants exposures offer_events offers stage_settings"
config_rows() {	# the kept tables' rows, in 1.0's columns
	local t cols
	for t in $kept; do
		cols=$(cat "$work/columns.$t")
		q -d upgraded -At -c "SELECT '$t', $cols FROM upsell.$t ORDER BY 2, 3, 4"
	done
}
for t in $kept; do
	q -d upgraded -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
						  WHERE attrelid = 'upsell.$t'::regclass AND attnum > 0 AND NOT attisdropped" >"$work/columns.$t"
done
config_rows >"$work/config-before"
[ "$(wc -l <"$work/config-before")" -ge 10 ] || { echo "too few configuration rows to test"; exit 1; }

# 5. 1.1's files over it, and the update, as a user would run them.
make -s -C "$REPO" PG_CONFIG="$pgcopy/pg_config" install >"$work/build-1.1.log" 2>&1 ||
	{ tail -20 "$work/build-1.1.log"; echo "installing 1.1 failed"; exit 1; }
q -d upgraded -c "ALTER EXTENSION upsell UPDATE"
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = 1.1 ] ||
	{ echo "the update did not reach 1.1"; exit 1; }

config_rows >"$work/config-after"
diff "$work/config-before" "$work/config-after" || { echo "configuration rows changed in the update"; exit 1; }
echo "configuration rows kept: $(wc -l <"$work/config-before")"

# 6. A fresh 1.1 install with the same shop and configuration: the updated
# database restored into a new one (pg_restore runs CREATE EXTENSION, which
# installs 1.1 afresh, then loads the configuration tables' rows).
"$pgcopy/pg_dump" -h "$work" -p "$port" -U postgres -Fc -d upgraded -f "$work/upgraded.dump"
q -d postgres -c "CREATE DATABASE fresh"
"$pgcopy/pg_restore" -h "$work" -p "$port" -U postgres -d fresh "$work/upgraded.dump"
[ "$(q -d fresh -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = 1.1 ] ||
	{ echo "the fresh install is not 1.1"; exit 1; }

q -d upgraded -f "$REPO/test/upgrade/describe.sql" >"$work/describe-upgraded"
q -d fresh -f "$REPO/test/upgrade/describe.sql" >"$work/describe-fresh"
if ! diff -u "$work/describe-fresh" "$work/describe-upgraded" >"$work/describe.diff"; then
	head -80 "$work/describe.diff"
	echo "the updated extension differs from a fresh 1.1 install"
	exit 1
fi
echo "objects equal to a fresh install: $(grep -c '' "$work/describe-fresh") description lines"

# identities go on after the kept rows, in both
for db in upgraded fresh; do
	q -d $db -c "INSERT INTO upsell.exclusions (product_id, note) VALUES (4, 'after the update')" \
		-c "INSERT INTO upsell.offers (stage, product_ids) VALUES ('cart', '{5}')" \
		-c "INSERT INTO upsell.exposures (experiment, unit_id, stage) VALUES ('cart_widget', 'customer-99', 'cart')"
done

# 7. Refreshed, both serve the same offers at every stage.
for db in upgraded fresh; do
	q -d $db -c "SET client_min_messages = warning" -c "CALL upsell.refresh()"
	(cd "$REPO" && "$pgcopy/psql" -X -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres -d $db \
		-f scripts/demo_offers.sql) >"$work/offers-$db" 2>&1 || { cat "$work/offers-$db"; exit 1; }
	q -d $db -At -c "SELECT model, row_count FROM upsell.models ORDER BY model" >>"$work/offers-$db"
done
diff -u "$work/offers-fresh" "$work/offers-upgraded" || { echo "offers differ after the update"; exit 1; }
grep -q complement "$work/offers-upgraded" || { echo "the updated shop serves no complements"; exit 1; }
echo "offers after refresh equal a fresh install's: $(grep -c '|' "$work/offers-fresh") rows"
