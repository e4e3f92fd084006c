#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.1 (main as landed at
# 1808193) to this tree's version: built from that commit, filled, updated,
# compared with a fresh install (test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.1 180819370e51761464fdd5d694a298bef20e14f4
