#!/usr/bin/env bash
# Nobody but the installing role (or a superuser) may create in the
# extension's schema: the next refresh by a superuser would run what they
# planted there.  CREATE EXTENSION refuses a schema made beforehand by
# another role (its owner keeps CREATE whatever is revoked), and a schema
# that holds functions upsell did not create; both succeed once fixed.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_schema_owner
fresh_database $db
q() { psql_q -d $db "$@"; }
q -c "DROP ROLE IF EXISTS upsell_e2e_mallory" -c "CREATE ROLE upsell_e2e_mallory"

expect_refusal() {
	local what=$1 pattern=$2 out
	if out=$(q -c "SET client_min_messages = warning" -c "CREATE EXTENSION upsell" 2>&1); then
		echo "$what: CREATE EXTENSION succeeded"
		exit 1
	fi
	printf '%s\n' "$out" | grep -q "$pattern" || { echo "$what: $out"; exit 1; }
	echo "$what: refused: $(printf '%s\n' "$out" | grep ERROR)"
}

# 1. the schema made by another role beforehand
q -c "CREATE SCHEMA upsell AUTHORIZATION upsell_e2e_mallory"
expect_refusal "a schema owned by another role" 'schema upsell is owned by role upsell_e2e_mallory'
q -c "ALTER SCHEMA upsell OWNER TO CURRENT_USER"

# 2. a function that upsell did not create, in a schema of the right owner
q -c "CREATE FUNCTION upsell._publish(text, bigint, text, bigint[]) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'"
expect_refusal "a planted function" 'holds functions that upsell did not create: _publish(text,bigint,text,bigint\[\])'
q -c "DROP FUNCTION upsell._publish(text, bigint, text, bigint[])"

q -c "SET client_min_messages = warning" -c "CREATE EXTENSION upsell"
[ "$(q -At -c "SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'upsell'")" = t ] || exit 1
echo "installed once the schema is the installer's and holds nothing foreign"
psql_q -d postgres -c "DROP DATABASE $db" -c "DROP ROLE upsell_e2e_mallory"
