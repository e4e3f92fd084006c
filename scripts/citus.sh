# Citus for the distributed tests and the distributed benchmark.  Sourced after
# lib.sh, not run.
#
# Citus is built once from the vendored archive into a cache outside the work
# tree, together with its own copy of the PostgreSQL it is built for: Citus is
# never installed into a PostgreSQL that others use.  Each run copies the cached
# tree into the work tree (.citus/pg, git-ignored; see citus_run_dir), installs
# upsell there and starts a coordinator and workers on 127.0.0.1, private
# ports, sockets in .citus/socket.

CITUS_VERSION=12.1.12
CITUS_TARBALL=${CITUS_TARBALL:-$REPO/../shared/vendor/citus-$CITUS_VERSION.tar.gz}
# Debian packages Citus links against (the vendored archive's README)
CITUS_BUILD_DEPS="libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev
	libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev"
# The nodes' folder: .citus/ in the work tree (git-ignored) when the cluster
# owner can write there, else a folder under /tmp named after it (a work tree
# in a 0700 folder, as mktemp -d makes, is closed to postgres).  The same
# path always gives the same folder, so every part that sources this agrees.
citus_run_dir() {
	local dir=${UPSELL_CITUS_DIR:-$REPO/.citus}
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$dir" 2>/dev/null || true
		if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
			dir=/tmp/upsell-citus-$(printf '%s' "$dir" | md5sum | cut -c1-8)
			mkdir -p "$dir"
			chown postgres: "$dir"
		fi
	fi
	printf '%s\n' "$dir"
}
CITUS_RUN=$(citus_run_dir)
CITUS_SOCKET=$CITUS_RUN/socket
# coordinator, then the workers: the ports after the test cluster's
CITUS_PORT=${UPSELL_CITUS_PORT:-$(( ${UPSELL_PORT:-54329} + 1 ))}

pg_major() {
	"$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'
}

# Why Citus cannot run here, or nothing when it can.
citus_unavailable() {
	local major
	major=$(pg_major)
	if [ ! -f "$CITUS_TARBALL" ]; then
		echo "Citus archive $CITUS_TARBALL is absent (set CITUS_TARBALL): distributed tests skipped"
	elif [ "$major" -lt 14 ] || [ "$major" -gt 16 ]; then
		echo "Citus $CITUS_VERSION supports PostgreSQL 14-16, not $major: distributed tests skipped"
	fi
}

# Part of the deps step: the Debian packages Citus needs to build.
ensure_citus_build_deps() {
	[ -f "$CITUS_TARBALL" ] || return 0
	local missing="" p
	for p in $CITUS_BUILD_DEPS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing Citus build dependencies:$missing"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	fi
}

citus_cache_dir() {
	printf '%s/upsell/citus-%s-pg%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}" "$CITUS_VERSION" "$(pg_major)"
}

# Copies the PostgreSQL installation of $PG_CONFIG (binaries, libraries,
# shared files, headers) under $1, keeping the directories' relative layout
# so that the copy is relocatable; prints the copy's pg_config.
copy_postgres() {
	local dest=$1 d root rel
	local dirs=("$("$PG_CONFIG" --bindir)" "$("$PG_CONFIG" --pkglibdir)"
		"$("$PG_CONFIG" --sharedir)" "$("$PG_CONFIG" --pkgincludedir)")
	# the longest common parent of the four directories
	root=${dirs[0]}
	for d in "${dirs[@]}"; do
		while [ "${d#"$root"/}" = "$d" ] && [ "$d" != "$root" ]; do root=$(dirname "$root"); done
	done
	for d in "${dirs[@]}"; do
		rel=${d#"$root"/}
		mkdir -p "$dest/$(dirname "$rel")"
		cp -a "$d" "$dest/$rel"
	done
	# pg_config's libdir must exist for the linker's -L (libpq comes from the system)
	rel=$("$PG_CONFIG" --libdir)
	mkdir -p "$dest/${rel#"$root"/}"
	rel=$("$PG_CONFIG" --bindir)
	printf '%s\n' "$dest/${rel#"$root"/}/pg_config"
}

# Builds Citus into the cache unless it is there; prints the cached pg_config.
# Concurrent runs wait on a lock; the tree appears by one atomic rename.
ensure_citus() {
	local dir tmp pgc fd
	dir=$(citus_cache_dir)
	if [ ! -f "$dir/pg_config.path" ]; then
		mkdir -p "$(dirname "$dir")"
		exec {fd}>"$dir.lock"
		flock "$fd"
		if [ ! -f "$dir/pg_config.path" ]; then
			say "building Citus $CITUS_VERSION into $dir (once; make -j2)"
			rm -rf "$dir"
			tmp=$(mktemp -d "$dir.build.XXXXXX")
			pgc=$(copy_postgres "$tmp/pg")
			mkdir "$tmp/src"
			tar xzf "$CITUS_TARBALL" -C "$tmp/src" --strip-components=1
			# no LLVM bitcode: it doubles the build, and the clusters run with jit = off
			if ! (cd "$tmp/src" && ./configure PG_CONFIG="$pgc" --without-libcurl &&
				make -j2 with_llvm=no && make install with_llvm=no) >"$tmp/build.log" 2>&1; then
				tail -30 "$tmp/build.log" >&2
				say "Citus build failed; log in $tmp/build.log"
				exec {fd}>&-
				return 1
			fi
			# the path of pg_config inside the tree, relative to it
			printf '%s\n' "${pgc#"$tmp/pg"/}" >"$tmp/pg/pg_config.path"
			mv "$tmp/pg" "$dir"
			rm -rf "$tmp"
		fi
		exec {fd}>&-
	fi
	printf '%s/%s\n' "$dir" "$(cat "$dir/pg_config.path")"
}

# A private copy of the cached tree in the work tree with upsell installed;
# sets CITUS_PG_CONFIG and CITUS_PGBIN.
install_citus_copy() {
	local cached dir
	cached=$(ensure_citus)
	dir=$(dirname "$(dirname "$cached")")
	while [ ! -f "$dir/pg_config.path" ]; do dir=$(dirname "$dir"); done
	rm -rf "$CITUS_RUN/pg"
	mkdir -p "$CITUS_RUN"
	cp -a "$dir" "$CITUS_RUN/pg"
	CITUS_PG_CONFIG=$CITUS_RUN/pg/$(cat "$dir/pg_config.path")
	CITUS_PGBIN=$("$CITUS_PG_CONFIG" --bindir)
	make -s PG_CONFIG="$CITUS_PG_CONFIG" >/dev/null
	make -s PG_CONFIG="$CITUS_PG_CONFIG" install >/dev/null
}

# citus_start NWORKERS: initdb (once) and start a coordinator and NWORKERS
# workers on 127.0.0.1, ports CITUS_PORT.., database upsell on each, the
# workers added to the coordinator.  Exports PGHOST/PGPORT for the coordinator.
CITUS_NODES=0
citus_start() {
	local n=$1 i port data
	[ "$(id -u)" = 0 ] && chown postgres: "$CITUS_RUN"
	as_cluster_owner mkdir -p "$CITUS_SOCKET"
	for i in $(seq 0 "$n"); do
		port=$((CITUS_PORT + i))
		data=$CITUS_RUN/node$i
		if [ -f "$data/postmaster.pid" ]; then
			as_cluster_owner "$CITUS_PGBIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
		fi
		if [ ! -f "$data/PG_VERSION" ]; then
			as_cluster_owner "$CITUS_PGBIN/initdb" -D "$data" -U postgres -A trust \
				--no-sync -E UTF8 --locale=C >/dev/null
			{
				grep -v -e shared_buffers -e max_worker_processes "$REPO/scripts/cluster.conf"
				printf '%s\n' "shared_buffers = 128MB" "max_worker_processes = 16" \
					"shared_preload_libraries = 'citus'" "listen_addresses = '127.0.0.1'" \
					"port = $port" "unix_socket_directories = '$CITUS_SOCKET'" \
					"citus.log_remote_commands = off" "max_connections = 200"
			} | as_cluster_owner tee -a "$data/postgresql.conf" >/dev/null
		fi
		as_cluster_owner "$CITUS_PGBIN/pg_ctl" -D "$data" -l "$CITUS_RUN/node$i.log" -w -t 60 start >/dev/null
		CITUS_NODES=$((i + 1))
		"$CITUS_PGBIN/psql" -X -q -h "$CITUS_SOCKET" -p "$port" -U postgres -d postgres \
			-c "CREATE DATABASE upsell" 2>/dev/null || true
		"$CITUS_PGBIN/psql" -X -q -h "$CITUS_SOCKET" -p "$port" -U postgres -d upsell \
			-c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS citus" >/dev/null
	done
	export PGHOST=$CITUS_SOCKET PGPORT=$CITUS_PORT PGUSER=postgres PGDATABASE=upsell
	"$CITUS_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -c "SELECT citus_set_coordinator_host('127.0.0.1', $CITUS_PORT)" >/dev/null
	for i in $(seq 1 "$n"); do
		"$CITUS_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
			-c "SELECT citus_add_node('127.0.0.1', $((CITUS_PORT + i)))" >/dev/null
	done
}

citus_stop() {
	local i
	for i in $(seq 0 $((CITUS_NODES - 1))); do
		as_cluster_owner "$CITUS_PGBIN/pg_ctl" -D "$CITUS_RUN/node$i" -m fast stop >/dev/null || true
	done
	CITUS_NODES=0
}

# psql on the coordinator (citus_psql) or on node I (citus_psql_node I ...)
citus_psql() {
	"$CITUS_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}
citus_psql_node() {
	local i=$1
	shift
	"$CITUS_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CITUS_SOCKET" -p $((CITUS_PORT + i)) "$@"
}
