#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.2 (main as landed at
# 4c0438c) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.2 4c0438c3b03f72c4e50730108f38f93b4455dbef
