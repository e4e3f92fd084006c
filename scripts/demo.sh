#!/usr/bin/env bash
# make demo: install what is missing, build and install upsell, start a
# throwaway PostgreSQL (or use PGHOST/PGPORT/PGDATABASE), load the bundled
# electronics shop, build the models and show offers for each funnel stage.
source "$(dirname "$0")/lib.sh"

ensure_build_deps
build_and_install
start_cluster

say "loading the electronics shop (test/data/electronics-sales-2019)"
psql_q -f scripts/load_electronics.sql 2>&1 | grep -v 'does not exist, skipping' >&2
say "registering it and building the models"
psql_q -f scripts/demo_setup.sql
say "offers"
"$PGBIN/psql" -X -v ON_ERROR_STOP=1 -f scripts/demo_offers.sql
say "the same shop as Shopify documents, and the widgets' JSON"
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -f scripts/demo_shopify.sql

stop_cluster
cat <<MSG

The database stays in $CLUSTER_DIR/data. To explore it:
  runuser -u postgres -- $PGBIN/pg_ctl -D $CLUSTER_DIR/data -o "-p $PGPORT -k $PGHOST -c listen_addresses=''" start
  psql -h $PGHOST -p $PGPORT -U postgres upsell
MSG
