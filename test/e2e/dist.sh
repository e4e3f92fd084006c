#!/usr/bin/env bash
# The release tarball as a user without root or apt would use it: `make dist`
# from the committed HEAD, unpacked, then plain `make && make install` run as
# an unprivileged user against a PostgreSQL that user owns -- a private copy
# of this PostgreSQL 15, and of the cached PostgreSQL 18 when there is one --
# and CREATE EXTENSION upsell with a refresh and a recommendation on a small
# shop.  Needs the repository's git history (make dist archives HEAD).
source "$(dirname "$0")/../../scripts/lib.sh"

git -C "$REPO" rev-parse --verify -q HEAD >/dev/null ||
	{ echo "skipped: not a git checkout (make dist archives HEAD)"; exit 77; }

work=$(mktemp -d /tmp/upsell-dist.XXXXXX)
chmod 755 "$work"
running=()
cleanup() {
	local d
	for d in "${running[@]}"; do
		as_cluster_owner "$d/bin/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

tarball=$(make -s -C "$REPO" dist | tail -1)
mv "$REPO/$tarball" "$work/"
echo "built $tarball"

# A private copy of the PostgreSQL whose pg_config is $1, in $2 (installations
# are relocatable: their directories keep their places relative to bindir).
copy_pg() {
	local cfg=$1 dest=$2 bindir libdir prefix d
	bindir=$("$cfg" --bindir)
	libdir=$("$cfg" --libdir)
	local dirs=("$bindir" "$("$cfg" --sharedir)" "$("$cfg" --pkglibdir)"
		"$("$cfg" --includedir)" "$("$cfg" --includedir-server)")
	prefix=$bindir
	for d in "${dirs[@]}"; do
		while [ "${d#"$prefix"/}" = "$d" ]; do prefix=$(dirname "$prefix"); done
	done
	# a self-contained build (the cached 18) keeps its libpq there too;
	# Debian's libdir is the system's, which is not copied
	[ "${libdir#"$prefix"/}" = "$libdir" ] || dirs=("$libdir" "${dirs[@]}")
	for d in "${dirs[@]}"; do
		mkdir -p "$dest/pg/$(dirname "${d#"$prefix"/}")"
		[ -e "$dest/pg/${d#"$prefix"/}" ] || cp -a "$d" "$dest/pg/${d#"$prefix"/}"
	done
	ln -s "pg/${bindir#"$prefix"/}" "$dest/bin"
}

try_version() {	# name, pg_config, port
	local name=$1 cfg=$2 port=$3 dir=$work/$1 out
	mkdir -p "$dir"
	copy_pg "$cfg" "$dir"
	[ "$("$dir/bin/pg_config" --pkglibdir)" != "$("$cfg" --pkglibdir)" ] ||
		{ echo "$name: the copy of PostgreSQL is not relocatable"; return 1; }
	tar -xzf "$work/$tarball" -C "$dir"
	chown -R postgres: "$dir"
	# no root from here on: the build, the install and the server run as the
	# owner of that PostgreSQL
	if ! as_cluster_owner env LD_LIBRARY_PATH="$("$dir/bin/pg_config" --libdir)" sh -c "
			cd '$dir/${tarball%.tar.gz}' &&
			make PG_CONFIG='$dir/bin/pg_config' >'$dir/build.log' 2>&1 &&
			make PG_CONFIG='$dir/bin/pg_config' install >>'$dir/build.log' 2>&1"; then
		tail -20 "$dir/build.log"
		echo "$name: building the tarball failed"
		return 1
	fi
	! grep -q 'warning:' "$dir/build.log" || { grep -A3 'warning:' "$dir/build.log"; echo "$name: warnings"; return 1; }
	as_cluster_owner "$dir/bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
	running+=("$dir")
	as_cluster_owner env LD_LIBRARY_PATH="$("$dir/bin/pg_config" --libdir)" \
		"$dir/bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses='' -c fsync=off" start >/dev/null
	out=$(LD_LIBRARY_PATH="$("$dir/bin/pg_config" --libdir)" "$dir/bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$dir" -p "$port" -U postgres -d postgres <<-'SQL'
		SET client_min_messages = warning;
		CREATE EXTENSION upsell;
		CREATE TABLE lines (order_id int, product_id int);
		INSERT INTO lines SELECT o, p FROM generate_series(1, 20) o, (VALUES (1), (2)) v(p);
		INSERT INTO lines SELECT o, p FROM generate_series(21, 30) o, (VALUES (1), (3)) v(p);
		SELECT upsell.register_orders('lines', 'order_id', 'product_id');
		CALL upsell.refresh();
		SELECT extversion || ' ' || (SELECT string_agg(product_id::text, ',' ORDER BY rank)
									 FROM upsell.recommend_for_cart('{1}', 2))
		FROM pg_extension WHERE extname = 'upsell';
	SQL
	) || { tail -20 "$dir/server.log"; echo "$name: CREATE EXTENSION from the tarball failed"; return 1; }
	out=$(printf '%s\n' "$out" | tail -1)
	echo "$name: $out"
	[ "$out" = "$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/upsell.control") 2,3" ] ||
		{ echo "$name: unexpected answer from the installed tarball"; return 1; }
	as_cluster_owner "$dir/bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null
	unset 'running[-1]'
}

try_version pg15 "$PG_CONFIG" $((PGPORT + 5)) || exit 1
if pg18=$("$REPO/scripts/pg_cache.sh" 18 2>/dev/null); then
	try_version pg18 "$pg18/bin/pg_config" $((PGPORT + 6)) || exit 1
else
	echo "PostgreSQL 18 is not in the cache: the tarball was tried on 15 only"
fi
