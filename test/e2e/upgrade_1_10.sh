#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.10 (main as landed at
# f76342b) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.10 f76342bb3e8e2ca8593ad0b799ee3460ecc0b61e
