#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from a released version, as a shop would do
# it; run by test/e2e/upgrade_X.sh as `from_release.sh X RELEASE_COMMIT`, one
# per released version (the Makefile's RELEASED).  Version X is built from
# its release commit and installed in a private copy of this PostgreSQL, the
# electronics shop registered with merchant rules, an experiment with
# exposures and events, a category substitute rule where X has them, and
# built models; then this tree's files are installed over it and the
# extension updated to its default_version.  Checks that
#   - upsell--X.sql is exactly what the X release built;
#   - the update takes the direct generated script upsell--X--NEW.sql
#     (pg_extension_update_paths), even with older steps installed;
#   - the updated extension's objects equal a fresh install's
#     (test/upgrade/describe.sql, every definition, no oids);
#   - every configuration row of X (the tables X marked for pg_dump)
#     survives, and identities continue;
#   - after a refresh, the offers of every funnel stage equal a fresh
#     install's.
# Needs the repository's history (the release commit); skips without it.
source "$(dirname "$0")/../../../scripts/lib.sh"

FROM=${1:?usage: from_release.sh VERSION RELEASE_COMMIT}
RELEASE=${2:?usage: from_release.sh VERSION RELEASE_COMMIT}
TO=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/upsell.control")
[ -n "$TO" ] && [ "$TO" != "$FROM" ] || { echo "upsell.control: default_version is '$TO', not a version after $FROM"; exit 1; }
if ! git -C "$REPO" cat-file -e "$RELEASE^{commit}" 2>/dev/null; then
	echo "skipped: this clone lacks the $FROM release commit $RELEASE (a shallow clone?)"
	exit 77
fi
echo "upgrade $FROM (release $RELEASE) -> $TO"

work=$(mktemp -d /tmp/upsell-upgrade-$FROM.XXXXXX)
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

# 1. The frozen script is what the release built.
for f in $(git -C "$REPO" ls-tree --name-only "$RELEASE" src/sql/ | sort); do
	git -C "$REPO" show "$RELEASE:$f"
done >"$work/released.sql"
cmp -s "$work/released.sql" "$REPO/upsell--$FROM.sql" ||
	{ echo "upsell--$FROM.sql differs from what release $RELEASE built"; exit 1; }

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

# 3. upsell $FROM, built from its release.
mkdir "$work/src-$FROM"
git -C "$REPO" archive "$RELEASE" | tar -x -C "$work/src-$FROM"
make -s -C "$work/src-$FROM" PG_CONFIG="$pgcopy/pg_config" install >"$work/build-$FROM.log" 2>&1 ||
	{ tail -20 "$work/build-$FROM.log"; echo "building $FROM failed"; exit 1; }

chown -R postgres: "$work"
as_cluster_owner "$pgcopy/initdb" -D "$work/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
as_cluster_owner "$pgcopy/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 \
	-o "-p $port -k $work -c listen_addresses='' -c fsync=off -c shared_buffers=256MB" start >/dev/null
q() { "$pgcopy/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres "$@"; }

# 4. A $FROM shop: the electronics data and the demo's set-up as $FROM had
# them, an experiment with variants, exposures and offer events, a category
# substitute rule (from 1.1 on), built models.
q -d postgres -c "CREATE DATABASE upgraded"
# (the release's loader, with today's parsing of the lines: the same rows, without
# the capturing regexp_match that took minutes, see scripts/load_electronics.sql)
parse_block() { awk '/^CREATE TEMP TABLE parsed AS/ { on = 1 } on { print } on && /;$/ { exit }' "$@"; }
git -C "$REPO" show "$RELEASE:scripts/load_electronics.sql" >"$work/load-release.sql"
parse_block "$REPO/scripts/load_electronics.sql" >"$work/parse.sql"
awk -v parse="$work/parse.sql" '
	/^CREATE TEMP TABLE parsed AS/ { while ((getline l < parse) > 0) print l; skip = 1 }
	skip { if (/;$/) skip = 0; next }
	{ print }' "$work/load-release.sql" >"$work/load.sql"
grep -q "split_part(line, ',', 1)" "$work/load.sql" && ! grep -v '^[[:space:]]*--' "$work/load.sql" | grep -q regexp_match ||
	{ echo "could not replace the parsing of $FROM's loader"; exit 1; }
git -C "$REPO" show "$RELEASE:scripts/demo_setup.sql" >"$work/setup.sql"
# since 1.7 the setup includes the registration (\ir demo_register.sql)
if git -C "$REPO" cat-file -e "$RELEASE:scripts/demo_register.sql" 2>/dev/null; then
	git -C "$REPO" show "$RELEASE:scripts/demo_register.sql" >"$work/demo_register.sql"
fi
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
DO $$
BEGIN
	IF pg_catalog.to_regclass('upsell.category_substitutes') IS NOT NULL THEN
		INSERT INTO upsell.category_substitutes (category, other_category, substitutes, note)
			VALUES ('laptops', 'tvs', true, 'upgrade test');
	END IF;
END
$$;
CALL upsell.refresh();
SQL
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = "$FROM" ] ||
	{ echo "the shop is not on $FROM"; exit 1; }

# the kept tables: those the installed version marked for pg_dump
kept=$(q -d upgraded -At -c "SELECT c.relname FROM pg_extension e, unnest(e.extconfig) u(oid)
							 JOIN pg_class c ON c.oid = u.oid
							 WHERE e.extname = 'upsell' AND c.relkind = 'r' ORDER BY 1")
echo "configuration tables of $FROM: $(echo $kept)"
[ "$(echo "$kept" | wc -w)" -ge 13 ] || { echo "too few configuration tables"; exit 1; }
config_rows() {	# the kept tables' rows, in $FROM's columns
	local t cols
	for t in $kept; do
		cols=$(cat "$work/columns.$t")
		q -d upgraded -At -c "SELECT '$t', $cols FROM upsell.$t" | LC_ALL=C sort
	done
}
for t in $kept; do
	q -d upgraded -At -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
						  WHERE attrelid = 'upsell.$t'::regclass AND attnum > 0 AND NOT attisdropped" >"$work/columns.$t"
done
config_rows >"$work/config-before"
[ "$(wc -l <"$work/config-before")" -ge 10 ] || { echo "too few configuration rows to test"; exit 1; }

# 5. This tree's files over it, and the update, as a user would run them.
# The update takes the direct script, whatever older steps the extension
# directory holds ($FROM's own install left its upgrade scripts there).
make -s -C "$REPO" PG_CONFIG="$pgcopy/pg_config" install >"$work/build-$TO.log" 2>&1 ||
	{ tail -20 "$work/build-$TO.log"; echo "installing $TO failed"; exit 1; }
path=$(q -d upgraded -At -c "SELECT path FROM pg_extension_update_paths('upsell')
							 WHERE source = '$FROM' AND target = '$TO'")
[ "$path" = "$FROM--$TO" ] || { echo "the update $FROM -> $TO would take the path '$path', not the direct script"; exit 1; }
echo "update path: $path ($(ls "$("$pgcopy/pg_config" --sharedir)/extension" | grep -c '^upsell--.*--.*\.sql$') upgrade scripts installed)"
# A view of the user's over upsell's views stops the update, named, and
# nothing of the user's is dropped (the views' row type went with CASCADE
# and took them along until 1.6).
q -d upgraded -c "CREATE VIEW public.my_pages AS SELECT * FROM upsell.product_page_offers" \
	-c "CREATE VIEW public.my_thanks AS SELECT * FROM upsell.post_purchase_offers"
if out=$(q -d upgraded -c "ALTER EXTENSION upsell UPDATE" 2>&1); then
	echo "the update went through the user's views"; exit 1
fi
echo "$out" | grep -q 'my_pages\|my_thanks' || { echo "$out"; echo "the update's error does not name the user's view"; exit 1; }
[ "$(q -d upgraded -At -c "SELECT count(*) FROM pg_views WHERE viewname IN ('my_pages', 'my_thanks')")" = 2 ] ||
	{ echo "a view of the user's was dropped"; exit 1; }
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = "$FROM" ] ||
	{ echo "the refused update changed the version"; exit 1; }
echo "the user's views stop the update: $(echo "$out" | grep -o 'ERROR: .*' | head -1)"
q -d upgraded -c "DROP VIEW public.my_pages, public.my_thanks"
# A view of the user's over a table of upsell's is named too (until 1.7 the
# error named only the sequence the table needs).
q -d upgraded -c "CREATE VIEW public.my_refreshes AS SELECT * FROM upsell.refresh_log"
if out=$(q -d upgraded -c "ALTER EXTENSION upsell UPDATE" 2>&1); then
	echo "the update went through the user's view over refresh_log"; exit 1
fi
echo "$out" | grep -q 'my_refreshes' || { echo "$out"; echo "the update's error does not name the user's view over refresh_log"; exit 1; }
q -d upgraded -c "DROP VIEW public.my_refreshes"
# What the update keeps of the user's: an audit trigger on a kept table, and
# the grants on the registration views (upsell.order_lines to an analyst, as
# the README advises); a grant on an object of the extension's it makes
# anew (refresh_log to a monitor) it names in a WARNING, to be made again.
# Until 1.7 all went, silently.
q -d upgraded >/dev/null <<'SQL'
CREATE TABLE public.rule_audit (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION public.audit_rules() RETURNS trigger LANGUAGE plpgsql AS
	$f$BEGIN INSERT INTO public.rule_audit (what) VALUES (TG_TABLE_NAME); RETURN NULL; END$f$;
CREATE TRIGGER my_audit AFTER INSERT ON upsell.exclusions FOR EACH ROW EXECUTE FUNCTION public.audit_rules();
DROP ROLE IF EXISTS upgrade_analyst;
CREATE ROLE upgrade_analyst;
GRANT SELECT ON upsell.order_lines TO upgrade_analyst;
GRANT SELECT ON upsell.refresh_log TO upgrade_analyst;
SQL
out=$(q -d upgraded -c "ALTER EXTENSION upsell UPDATE" 2>&1)
[ "$(q -d upgraded -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = "$TO" ] ||
	{ echo "$out"; echo "the update did not reach $TO"; exit 1; }
[ "$(q -d upgraded -At -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'my_audit'")" = 1 ] ||
	{ echo "the update dropped the user's trigger on a kept table"; exit 1; }
[ "$(q -d upgraded -At -c "SELECT has_table_privilege('upgrade_analyst', 'upsell.order_lines', 'SELECT')")" = t ] ||
	{ echo "the update lost the user's grant on upsell.order_lines"; exit 1; }
echo "$out" | grep -q 'grant them again: GRANT SELECT ON TABLE upsell.refresh_log TO upgrade_analyst' ||
	{ echo "$out"; echo "the update does not name the grant to make again"; exit 1; }
# (pg_dump keeps the grant on the view as the user's, not the extension's)
[ "$(q -d upgraded -At -c "SELECT count(*) FROM pg_init_privs WHERE objoid = 'upsell.order_lines'::regclass")" = 0 ] ||
	{ echo "the grant on upsell.order_lines counts as the extension's"; exit 1; }
echo "the user's trigger on a kept table and grant on upsell.order_lines are kept; the grant on refresh_log is named"
q -d upgraded >/dev/null <<'SQL'
DROP TRIGGER my_audit ON upsell.exclusions;
DROP FUNCTION public.audit_rules();
DROP TABLE public.rule_audit;
REVOKE ALL ON upsell.order_lines FROM upgrade_analyst;
DROP ROLE upgrade_analyst;
SQL

config_rows >"$work/config-after"
diff "$work/config-before" "$work/config-after" || { echo "configuration rows changed in the update"; exit 1; }
echo "configuration rows kept: $(wc -l <"$work/config-before")"

# 6. A fresh install with the same shop and configuration: the updated
# database restored into a new one (pg_restore runs CREATE EXTENSION, which
# installs $TO afresh, then loads the configuration tables' rows).
"$pgcopy/pg_dump" -h "$work" -p "$port" -U postgres -Fc -d upgraded -f "$work/upgraded.dump"
q -d postgres -c "CREATE DATABASE fresh"
"$pgcopy/pg_restore" -h "$work" -p "$port" -U postgres -d fresh "$work/upgraded.dump"
[ "$(q -d fresh -At -c "SELECT extversion FROM pg_extension WHERE extname = 'upsell'")" = "$TO" ] ||
	{ echo "the fresh install is not $TO"; exit 1; }

# (a grant and its revoke leave an ACL that equals the default but is no
# longer NULL: the same on the fresh view as on the updated one above)
q -d fresh -c "GRANT SELECT ON upsell.order_lines TO PUBLIC" -c "REVOKE SELECT ON upsell.order_lines FROM PUBLIC"
q -d upgraded -f "$REPO/test/upgrade/describe.sql" >"$work/describe-upgraded"
q -d fresh -f "$REPO/test/upgrade/describe.sql" >"$work/describe-fresh"
if ! diff -u "$work/describe-fresh" "$work/describe-upgraded" >"$work/describe.diff"; then
	head -80 "$work/describe.diff"
	echo "the extension updated from $FROM differs from a fresh $TO install"
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
