#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.5 (main as landed at
# d708b63) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.5 d708b63e6f0365bc271397c1fa4f21c4a799e979
