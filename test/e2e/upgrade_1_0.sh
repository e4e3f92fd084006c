#!/usr/bin/env bash
# ALTER EXTENSION upsell UPDATE from the released 1.0 to this tree's version:
# built from the 1.0 release commit, filled, updated, compared with a fresh
# install (what is checked: test/e2e/upgrade/from_release.sh).
exec bash "$(dirname "$0")/upgrade/from_release.sh" 1.0 6cd9356ac6be3384a47ade7c1c973c5e2b8f656d
