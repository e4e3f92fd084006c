# Shared by demo.sh, test.sh and bench.sh: install what is missing, build and
# install the extension, and start/stop a throwaway PostgreSQL cluster.
# Sourced, not run.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi
export PG_CONFIG

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The OS packages come from `make deps` (scripts/deps.sh), which `make demo`,
# `make test` and `make bench` run first; a PostgreSQL of one's own only needs
# pg_config, its server headers and a C compiler.
ensure_build_deps() {
	local pgxs incdir
	pgxs=$("$PG_CONFIG" --pgxs 2>/dev/null || true)
	incdir=$("$PG_CONFIG" --includedir-server 2>/dev/null || true)
	if [ -z "$pgxs" ] || [ ! -f "$pgxs" ] || [ ! -f "$incdir/postgres.h" ] ||
		! command -v make >/dev/null || ! command -v gcc >/dev/null; then
		say "missing: $PG_CONFIG with its server headers (postgres.h), make or gcc: run 'make deps'"
		exit 1
	fi
}

build_and_install() {
	say "building upsell"
	make -s PG_CONFIG="$PG_CONFIG" >/dev/null
	say "installing upsell into $("$PG_CONFIG" --pkglibdir)"
	if [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
		make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	else
		as_root make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	fi
}

PGBIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
CLUSTER_STARTED=0

# Runs a command as the OS user that owns the throwaway cluster: PostgreSQL
# refuses to run as root, so root hands it to the postgres user.
as_cluster_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Picks the cluster's folder: .cluster/ in the repository (git-ignored) when
# the cluster owner can write there, else a folder under /tmp named after the
# repo.  CLUSTER_NAME (optional) names a subfolder, one per extra cluster.
cluster_dir() {
	local dir="$REPO/.cluster"
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$dir" 2>/dev/null || true
		if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
			dir=/tmp/upsell-cluster-$(printf '%s' "$REPO" | md5sum | cut -c1-8)
			mkdir -p "$dir"
			chown postgres: "$dir"
		fi
	fi
	if [ -n "${CLUSTER_NAME:-}" ]; then
		dir=$dir/$CLUSTER_NAME
		mkdir -p "$dir"
		[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	fi
	printf '%s\n' "$dir"
}

# Uses the server named by PGHOST/PGPORT/PGDATABASE when set; otherwise starts
# a private cluster (own port, socket directory inside the cluster folder).
start_cluster() {
	if [ -n "${PGHOST:-}" ] || [ -n "${PGPORT:-}" ] || [ -n "${PGDATABASE:-}" ]; then
		say "using the server at PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGDATABASE=${PGDATABASE:-}"
		PGUSER=${PGUSER:-$(id -un)}
		export PGUSER
		return
	fi
	local dir
	dir=$(cluster_dir)
	CLUSTER_DIR=$dir
	export PGHOST=$dir/socket PGPORT=${UPSELL_PORT:-54329} PGUSER=postgres
	export PGDATABASE=upsell
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_cluster_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		say "creating a throwaway cluster in $dir/data"
		as_cluster_owner mkdir -p "$dir/data" "$dir/socket"
		as_cluster_owner "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust \
			--no-sync -E UTF8 --locale=C >/dev/null
		cat "$REPO/scripts/cluster.conf" | as_cluster_owner tee -a "$dir/data/postgresql.conf" >/dev/null
	fi
	as_cluster_owner mkdir -p "$dir/socket"
	say "starting PostgreSQL on port $PGPORT, socket $PGHOST"
	local preload=""
	if [ -f "$("$PG_CONFIG" --pkglibdir)/pg_cron.so" ]; then
		# jobs run in background workers: the cluster listens on no TCP port
		preload="-c shared_preload_libraries=pg_cron -c cron.database_name=upsell -c cron.use_background_workers=on"
	fi
	# UPSELL_SERVER_SETTINGS: server settings of this start, "name=value ...",
	# such as a buffer pool for a large shop: "shared_buffers=6GB huge_pages=on"
	local setting settings=""
	for setting in ${UPSELL_SERVER_SETTINGS:-}; do
		case $setting in
			*=*) settings="$settings -c $setting" ;;
			*) say "UPSELL_SERVER_SETTINGS: '$setting' is not name=value"; exit 1 ;;
		esac
	done
	as_cluster_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $PGPORT -k $PGHOST -c listen_addresses='' $preload$settings" start >/dev/null
	CLUSTER_STARTED=1
	"$PGBIN/psql" -X -q -d postgres -c "CREATE DATABASE upsell" 2>/dev/null || true
}

stop_cluster() {
	if [ "$CLUSTER_STARTED" = 1 ]; then
		say "stopping the throwaway cluster"
		as_cluster_owner "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast stop >/dev/null || true
		CLUSTER_STARTED=0
	fi
}

psql_q() {
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}

# Makes each database named anew, empty (an e2e script's own).
fresh_database() {
	local db
	for db in "$@"; do
		psql_q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	done
}
