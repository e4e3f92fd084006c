#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.9 (main as landed at
# b8515ad) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.9 b8515ad1664a8e09b258eaed31c7e33eb9418b9b
