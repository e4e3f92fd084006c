#!/usr/bin/env bash
# make deps: the one step that touches the operating system (Debian 12).
# `make demo` and `make test` call it; a user with a PostgreSQL of their own
# skips it and builds with `make PG_CONFIG=... && make install`.
#
# Installs, when missing:
#   - PostgreSQL 15 with its server headers and pg_cron (the demo and tests);
#   - build-essential, and bison, flex and perl, which the PostgreSQL 18
#     source tree needs (its release tarball no longer carries generated
#     parsers); scripts/pg_cache.sh builds 18 from it;
#   - an apt source for sid's *source* packages, from which
#     `apt-get source postgresql-18` takes the upstream tarball.  It is
#     deb-src only, so no installed binary package can ever come from sid.
# Idempotent and quick when everything is there: apt is only asked when
# something is missing.
set -euo pipefail

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
say() { printf '==> %s\n' "$*" >&2; }

PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-15-cron
	build-essential bison flex perl"

missing=""
for p in $PACKAGES; do
	if [ "$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
		missing="$missing $p"
	fi
done

# Written like the machine's own sources (deb822, Debian's archive key).
SID_SRC=/etc/apt/sources.list.d/upsell-sid-src.sources
SID_SRC_TEXT="# upsell (make deps): sid's source packages, for PostgreSQL 18's upstream tarball.
# deb-src only: no binary package can be installed or upgraded from sid.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"

update=0
if [ ! -f "$SID_SRC" ] || [ "$(cat "$SID_SRC")" != "$SID_SRC_TEXT" ]; then
	say "adding $SID_SRC (deb-src only)"
	printf '%s\n' "$SID_SRC_TEXT" | as_root tee "$SID_SRC" >/dev/null
	update=1
fi
# the source index of sid is what `apt-get source` reads
if ! apt-cache showsrc --only-source postgresql-18 2>/dev/null | grep -q '^Version:'; then
	update=1
fi
if [ -n "$missing" ]; then
	update=1
fi

if [ "$update" = 1 ]; then
	say "apt-get update"
	as_root apt-get update -qq
fi
if [ -n "$missing" ]; then
	say "installing:$missing"
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
