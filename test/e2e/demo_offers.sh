#!/usr/bin/env bash
# The demo's path on the running test cluster: load the real electronics
# shop, register it, refresh, and check the offers it prints.
source "$(dirname "$0")/../../scripts/lib.sh"

db=upsell_e2e_demo
fresh_database $db
psql_q -d $db -f scripts/load_electronics.sql >/dev/null 2>&1
psql_q -d $db -f scripts/demo_setup.sql >/dev/null 2>&1
out=$("$PGBIN/psql" -X -v ON_ERROR_STOP=1 -d $db -f scripts/demo_offers.sql)
printf '%s\n' "$out"
# The iPhone's first complement is its charging cable; the Google Phone's cart
# gets USB-C among its first offers, as the add-on of the large gap to free
# shipping; no stage offers a phone (every offer row starts with a number).
printf '%s\n' "$out" | grep -A3 '== Pre-purchase' | grep -qE '1 \| complement +\| Lightning Charging Cable' || exit 1
printf '%s\n' "$out" | grep -A5 '== During purchase' | grep -qE 'USB-C Charging Cable' || exit 1
printf '%s\n' "$out" | grep -A12 '== During purchase' | grep -qE 'gap_filler .*you are 392.32 away from free shipping' || exit 1
if printf '%s\n' "$out" | grep -E '^ *[0-9]+ +\|' | grep -q 'Phone'; then exit 1; fi
printf '%s\n' "$out" | grep -A12 '== During purchase' | grep -q 'quantity_tier' || exit 1
printf '%s\n' "$out" | grep -A3 '== Post-purchase' | grep -qE '1 \| complement' || exit 1
psql_q -d postgres -c "DROP DATABASE $db"
