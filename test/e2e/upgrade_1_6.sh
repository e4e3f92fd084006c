#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.6 (main as landed at
# e6e9526) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.6 e6e95262cdf250f0abc6baa58f821b32c71b7be1
