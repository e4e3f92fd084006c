#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.7 (main as landed at
# d50a7fa) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.7 d50a7fa654aad00b4f92ba1b614be1b5e3ecfd81
