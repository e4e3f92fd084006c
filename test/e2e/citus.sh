#!/usr/bin/env bash
# upsell on Citus: a coordinator and 2 workers on 127.0.0.1 (private ports,
# sockets in .citus/), Citus built once into a cache (scripts/citus.sh).  Runs
# every part test/e2e/citus/NN_*.sh against them; each part compares the
# distributed answers with a single-node install of the same data (database
# upsell_single on the coordinator, without the citus extension).
# Skips (77) when the vendored Citus archive is absent or PostgreSQL's major
# version is not one Citus 12.1 supports.
source "$(dirname "$0")/../../scripts/lib.sh"
source "$REPO/scripts/citus.sh"

why=$(citus_unavailable)
if [ -n "$why" ]; then
	echo "$why"
	exit 77
fi
t0=$(date +%s)
ensure_citus_build_deps
install_citus_copy
make -s PG_CONFIG="$CITUS_PG_CONFIG" test/bench/gen_orders
trap citus_stop EXIT
citus_start 2
echo "Citus cluster up in $(( $(date +%s) - t0 )) s: coordinator 127.0.0.1:$CITUS_PORT, workers :$((CITUS_PORT + 1)) :$((CITUS_PORT + 2))"

failed=0
for part in "$REPO"/test/e2e/citus/[0-9]*.sh; do
	t1=$(date +%s)
	if bash "$part"; then
		echo "ok: $(basename "$part") ($(( $(date +%s) - t1 )) s)"
	else
		echo "FAILED: $(basename "$part")"
		failed=1
	fi
done
echo "Citus parts done in $(( $(date +%s) - t0 )) s"
exit $failed
