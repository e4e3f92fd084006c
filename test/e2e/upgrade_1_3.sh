#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.3 (main as landed at
# b6701d5) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.3 b6701d5c8386eae257169d73ff30d934337d9b34
