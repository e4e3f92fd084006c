#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.11 (main as landed at
# a9983b9) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.11 a9983b92101692140a4ac1c5fdea120e9940d2d5
