#!/usr/bin/env bash
# PostgreSQL builds that Debian 12 does not package, kept in a cache outside
# the work tree and shared by every checkout and run on the machine:
#
#   scripts/pg_cache.sh 18   prints the prefix of PostgreSQL 18 built from
#                            the upstream tarball of sid's source package
#   scripts/pg_cache.sh 17   prints the root of trixie's postgresql-server-dev-17
#                            unpacked (headers and PGXS only: it is never
#                            installed, its binaries need a newer glibc)
#
# Layout (UPSELL_CACHE, default ~/.cache/upsell):
#   NAME-VERSION/      one finished product (pg-18.6, pg17-dev-17.12); it
#                      appears by an atomic rename, so it is complete or absent
#   NAME.lock          flock held while one is made (concurrent runs wait)
#   .tmp-NAME.XXXXXX/  the build in progress, removed on exit
#   src/               downloaded sources and packages, checked before use
#   apt-trixie/        a private apt configuration (sources, lists, cache)
#                      used only to download the 17 headers
# Nothing ever installs into the cache after that rename: a test run works on
# a private copy (PostgreSQL installs are relocatable) -- see pg18_private_copy
# in scripts/lib.sh.
set -euo pipefail

CACHE=${UPSELL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upsell}
JOBS=${UPSELL_BUILD_JOBS:-2}
# contrib modules the regression tests load (91_serving uses dblink)
PG18_CONTRIB="dblink"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'pg_cache: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE/src"

# Runs "$@" (which builds into $TMP and leaves the product at $TMP/out) under
# the lock of NAME, unless FINAL already exists; then renames it into place.
make_once() {	# name final cmd...
	local name=$1 final=$2
	shift 2
	[ -d "$final" ] && return 0
	exec 9>"$CACHE/$name.lock"
	flock 9
	if [ ! -d "$final" ]; then	# another run may have made it while we waited
		# holding the lock, any other build folder of NAME is a killed run's
		rm -rf "$CACHE/.tmp-$name".*
		TMP=$(mktemp -d "$CACHE/.tmp-$name.XXXXXX")
		trap 'rm -rf "$TMP"' EXIT
		trap 'exit 1' INT TERM HUP
		"$@"
		mv -T "$TMP/out" "$final"
		rm -rf "$TMP"
		trap - EXIT INT TERM HUP
	fi
	exec 9>&-
}

# Checks FILE against the Checksums-Sha256 list of the .dsc DESC.
check_sha256() {	# file desc
	local want got
	want=$(awk -v f="$(basename "$1")" '$3 == f && length($1) == 64 {print $1}' "$2" | head -1)
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[ -n "$want" ] || die "no sha256 for $(basename "$1") in $2"
	[ "$want" = "$got" ] || die "sha256 mismatch for $1: $got, expected $want"
}

# --- PostgreSQL 18 --------------------------------------------------------

# sid's version, e.g. 18.6-3 (needs the deb-src line of `make deps`)
pg18_debian_version() {
	apt-cache showsrc --only-source postgresql-18 2>/dev/null |
		awk '/^Version:/ {print $2}' | sort -V | tail -1
}

pg18_build() {	# upstream debian
	local up=$1 deb=$2 src="$CACHE/src/postgresql-18_$1"
	local t0=$SECONDS
	mkdir -p "$src"
	# apt checks the .dsc and tarballs against sid's signed Sources index;
	# the upstream tarball is checked against the .dsc once more, as stored
	# (a download cut short by a killed run is fetched again)
	if [ ! -f "$src/postgresql-18_$deb.dsc" ] || [ ! -f "$src/postgresql-18_$up.orig.tar.bz2" ] ||
		! (check_sha256 "$src/postgresql-18_$up.orig.tar.bz2" "$src/postgresql-18_$deb.dsc") 2>/dev/null; then
		rm -rf "$src"
		mkdir -p "$src"
		say "downloading postgresql-18 $deb (apt-get source --download-only)"
		(cd "$src" && apt-get source -qq -o APT::Sandbox::User=root --download-only "postgresql-18=$deb" >/dev/null)
		check_sha256 "$src/postgresql-18_$up.orig.tar.bz2" "$src/postgresql-18_$deb.dsc"
	fi
	say "building PostgreSQL $up into $CACHE/pg-$up (once; -j$JOBS)"
	tar -C "$TMP" -xjf "$src/postgresql-18_$up.orig.tar.bz2"
	cd "$TMP/postgresql-$up"
	# Only what the tests need: no ICU, readline, zlib, NLS, JIT or docs.
	# --disable-rpath and an $ORIGIN run path make the install relocatable
	# with its own libpq, so private copies work wherever they are put.
	./configure -q --prefix="$CACHE/pg-$up" --disable-rpath \
		--without-icu --without-readline --without-zlib >"$TMP/configure.log" 2>&1 ||
		{ tail -30 "$TMP/configure.log" >&2; die "configure failed"; }
	# Of src/, in src/Makefile's order, the server and the programs that the
	# tests and PGXS use: no ecpg, no other client programs.  COPT=-O1
	# compiles faster than -O2; PGXS does not record it, so extensions built
	# against this install still get -O2 (only pg_config --cflags shows it).
	local d subdirs="common port timezone backend backend/utils/mb/conversion_procs
		backend/snowball include interfaces/libpq backend/replication/libpqwalreceiver
		backend/replication/pgoutput fe_utils bin/initdb bin/pg_ctl bin/psql bin/pg_config
		bin/pg_dump pl/plpgsql makefiles test/regress"
	local args=(-s -j"$JOBS" COPT=-O1 LDFLAGS_EX="-Wl,-rpath,'\$\$ORIGIN/../lib'")
	# PostgreSQL's makefiles generate their headers (utils/errcodes.h, ...)
	# only in a make of level 0; under `make test` this script inherits
	# MAKELEVEL=1 (and the outer make's flags), and src/common would then be
	# compiled without them.  So: makes of our own, the headers first.
	unset MAKELEVEL MAKEFLAGS MFLAGS
	(
		make "${args[@]}" -C src/backend generated-headers || exit 1
		for d in $subdirs; do
			make "${args[@]}" -C "src/$d" || exit 1
		done
		for d in $subdirs; do
			make "${args[@]}" -C "src/$d" install DESTDIR="$TMP/dest" || exit 1
		done
		make "${args[@]}" -C src install-local DESTDIR="$TMP/dest" &&
			make "${args[@]}" -C config install DESTDIR="$TMP/dest"
	) >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log" >&2; die "build failed"; }
	local m
	for m in $PG18_CONTRIB; do
		make "${args[@]}" -C "contrib/$m" install DESTDIR="$TMP/dest" >>"$TMP/build.log" 2>&1 ||
			{ tail -30 "$TMP/build.log" >&2; die "contrib/$m failed"; }
	done
	cd "$CACHE"
	mv -T "$TMP/dest$CACHE/pg-$up" "$TMP/out"
	printf 'postgresql %s (debian source %s), contrib: %s, -j%s, built in %d s on %s, load average %s\n' \
		"$up" "$deb" "$PG18_CONTRIB" "$JOBS" $((SECONDS - t0)) "$(date -u +%FT%TZ)" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" >"$TMP/out/BUILD-INFO"
	say "PostgreSQL $up built in $((SECONDS - t0)) s"
}

pg18() {
	local deb up final
	deb=$(pg18_debian_version)
	if [ -z "$deb" ]; then
		# no apt index: fall back on the newest build already cached
		final=$(ls -d "$CACHE"/pg-18.* 2>/dev/null | sort -V | tail -1 || true)
		[ -n "$final" ] || die "sid's postgresql-18 source is unknown to apt: run 'make deps'"
		printf '%s\n' "$final"
		return
	fi
	up=${deb#*:}
	up=${up%-*}
	final="$CACHE/pg-$up"
	make_once pg-18 "$final" pg18_build "$up" "$deb"
	printf '%s\n' "$final"
}

# --- PostgreSQL 17 headers --------------------------------------------------

# apt run against a private configuration that knows trixie alone: the
# system's apt never sees trixie, so nothing can be installed from it.
apt_trixie() {	# apt-get|apt-cache args...
	local tool=$1 d="$CACHE/apt-trixie"
	shift
	mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/etc/sources.list.d" "$d/etc/preferences.d"
	cat >"$d/etc/trixie.sources" <<-'EOF'
		# upsell: trixie's binary index, for `apt-get download postgresql-server-dev-17` only
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: trixie
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	"$tool" \
		-o APT::Sandbox::User=root \
		-o Dir::Etc::SourceList="$d/etc/trixie.sources" \
		-o Dir::Etc::SourceParts="$d/etc/sources.list.d" \
		-o Dir::Etc::Preferences="$d/etc/preferences" \
		-o Dir::Etc::PreferencesParts="$d/etc/preferences.d" \
		-o Dir::State::Lists="$d/lists" \
		-o Dir::Cache="$d" \
		-o Dir::Cache::archives="$d/archives" \
		-o Dir::State::status=/dev/null \
		-o APT::Get::List-Cleanup=false \
		"$@"
}

pg17_version() {
	apt_trixie apt-cache show postgresql-server-dev-17 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -1
}

pg17_extract() {	# debian-version
	local deb=$1 f
	say "downloading trixie's postgresql-server-dev-17 $deb (apt-get download; not installed)"
	(cd "$CACHE/src" && apt_trixie apt-get download -qq "postgresql-server-dev-17=$deb" >/dev/null)
	f=$(ls "$CACHE/src"/postgresql-server-dev-17_"${deb#*:}"_*.deb | head -1)
	# apt checked it against trixie's signed index; keep the proof beside it
	apt_trixie apt-cache show "postgresql-server-dev-17=$deb" 2>/dev/null | sed -n 's/^SHA256: //p' >"$TMP/sha"
	[ "$(cut -d' ' -f1 "$TMP/sha")" = "$(sha256sum "$f" | cut -d' ' -f1)" ] || die "sha256 mismatch for $f"
	dpkg-deb -x "$f" "$TMP/out"
}

pg17() {
	local deb final
	if ! ls "$CACHE/apt-trixie/lists/"*trixie*Packages* >/dev/null 2>&1; then
		exec 8>"$CACHE/apt-trixie.lock"
		flock 8
		ls "$CACHE/apt-trixie/lists/"*trixie*Packages* >/dev/null 2>&1 ||
			apt_trixie apt-get update -qq >/dev/null || true
		exec 8>&-
	fi
	deb=$(pg17_version)
	if [ -z "$deb" ]; then
		final=$(ls -d "$CACHE"/pg17-dev-* 2>/dev/null | sort -V | tail -1 || true)
		[ -n "$final" ] || die "cannot reach trixie's index for postgresql-server-dev-17"
		printf '%s\n' "$final"
		return
	fi
	final="$CACHE/pg17-dev-${deb#*:}"
	make_once pg17-dev "$final" pg17_extract "$deb"
	printf '%s\n' "$final"
}

case "${1:-}" in
	18) pg18 ;;
	17) pg17 ;;
	*) die "usage: $0 18|17" ;;
esac
