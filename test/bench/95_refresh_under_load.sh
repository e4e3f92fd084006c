#!/usr/bin/env bash
# Readers during 20 refreshes of the bench shop (every 4th full, the others
# incremental): pgbench from 2 clients on the three funnel stages,
# recommend_for_cart, gap_fillers and upgrade_candidates, each answer
# compared with the one before the run.  Requires 0 failed, empty or changed
# answers and a reader p99 during refresh below 3x the p99 without.
source "$(dirname "$0")/lib.sh"
PGBIN=$(dirname "$(command -v "$PSQL" 2>/dev/null || echo "$PSQL")")
export PGBIN
REFRESHES=${REFRESH_LOAD_REFRESHES:-20} FULL_EVERY=4 BASE_SECONDS=${REFRESH_LOAD_BASE_SECONDS:-30} \
	CHUNK_SECONDS=5 SAMPLES=100 MAX_RATIO=3 \
	bash "$(dirname "$0")/refresh_load.sh"
