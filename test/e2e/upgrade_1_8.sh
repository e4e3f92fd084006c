#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.8 (main as landed at
# 60864a1) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.8 60864a12fe7983caab1fa324056ba808ba19c711
