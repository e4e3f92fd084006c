#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.4 (main as landed at
# 894af68) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.4 894af689e9a78002e73efeb0cce3ac5d46b0c672
