#!/usr/bin/env bash
# make test: every test layer on every supported PostgreSQL, one summary line
# per version, then the single line "N passed, N failed".  Exits non-zero on
# any failure.  `make deps` has run first (Makefile).
#
#   15  ($PG_CONFIG, default Debian's): build, unit tests of the C core
#       (plain and ASan/UBSan; they need no server), pg_regress, end-to-end
#   17  build only, against trixie's server headers (scripts/pg_cache.sh 17)
#   18  build and pg_regress, on a private copy of the PostgreSQL 18 that
#       scripts/pg_cache.sh builds once into ~/.cache/upsell, with its own
#       throwaway cluster on port UPSELL_PORT + 1
#
# UPSELL_TEST_VERSIONS (default "15 17 18") picks the versions to run.
source "$(dirname "$0")/lib.sh"

VERSIONS=${UPSELL_TEST_VERSIONS:-15 17 18}
PORT15=${UPSELL_PORT:-54329}

PASSED=0
FAILED=0
SKIPPED=0
V_PASSED=0
V_FAILED=0
V_SKIPPED=0
V_LAYERS=""
tally() {	# layer passed failed [skipped]
	local skipped=""
	[ "${4:-0}" -gt 0 ] && skipped=", $4 skipped"
	printf "  %-10s %d passed, %d failed%s\n" "$1:" "$2" "$3" "$skipped" >&2
	V_PASSED=$((V_PASSED + $2))
	V_FAILED=$((V_FAILED + $3))
	V_SKIPPED=$((V_SKIPPED + ${4:-0}))
	V_LAYERS="$V_LAYERS${V_LAYERS:+, }$1"
}
version_done() {	# "PostgreSQL 15.x"
	local skipped=""
	[ "$V_SKIPPED" -gt 0 ] && skipped=", $V_SKIPPED skipped"
	printf '%s -- %d passed, %d failed%s (%s)\n' "$1" "$V_PASSED" "$V_FAILED" "$skipped" "$V_LAYERS"
	PASSED=$((PASSED + V_PASSED))
	FAILED=$((FAILED + V_FAILED))
	SKIPPED=$((SKIPPED + V_SKIPPED))
	V_PASSED=0 V_FAILED=0 V_SKIPPED=0 V_LAYERS=""
}
major_of() {	# pg_config -> "PostgreSQL 15.20"
	"$1" --version | awk '{print $1, $2}'
}

# Builds upsell in DIR (make args and goals follow).  Passes when the
# compiler printed no warning (-Wall -Wextra) and the fmgr layer calls none
# of the allocation functions that only the newest minor releases export
# (see src/compat.h; the core in src/core uses no server headers).
check_build() {	# dir make-args...
	local dir=$1 log newer
	shift
	log=$(mktemp)
	make -s -C "$dir" clean "$@" >/dev/null 2>&1 || true
	if ! make -s -C "$dir" "$@" >"$log" 2>&1; then
		tail -40 "$log" >&2
		rm -f "$log"
		tally build 0 1
		return 1
	fi
	if grep -q 'warning:' "$log"; then
		grep -A3 'warning:' "$log" >&2
		rm -f "$log"
		tally build 0 1
		return 0
	fi
	rm -f "$log"
	newer=$(nm --undefined-only "$dir"/src/*.o | awk '{print $NF}' |
		grep -E '^(re)?palloc0?_mul(_extended)?$' | sort -u | tr '\n' ' ' || true)
	if [ -n "$newer" ]; then
		say "the module calls $newer: older minor releases lack them (use src/compat.h)"
		tally build 0 1
		return 0
	fi
	tally build 1 0
}

# pg_regress (sql/*.sql against expected/*.out, or an alternative
# expected/NAME_N.out where a version's output truly differs) in DIR against
# the running cluster.
run_regress() {	# dir pg_config
	local dir=$1 cfg=$2 ntests nfail log
	ntests=$(ls "$dir"/sql/*.sql | wc -l)
	log=$(mktemp)
	if make -s -C "$dir" PG_CONFIG="$cfg" installcheck >"$log" 2>&1; then
		tally regress "$ntests" 0
	else
		cat "$log" >&2
		[ -f "$dir/regression.diffs" ] && head -200 "$dir/regression.diffs" >&2
		nfail=$(grep -cE '^(not ok|test .* FAILED|     .* \.\.\. FAILED)' "$log" || true)
		[ "$nfail" -gt 0 ] || nfail=1
		tally regress $((ntests - nfail)) "$nfail"
	fi
	rm -f "$log"
}

# A copy of the source tree to build against another version without
# touching the work tree's objects: the files git knows (tracked, and new
# ones not ignored), or everything but .cluster in an unpacked tarball.
copy_tree() {	# dest
	local dest=$1
	rm -rf "$dest"
	mkdir -p "$dest"
	if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$REPO" ls-files -z -co --exclude-standard |
			while IFS= read -r -d '' f; do
				[ -e "$REPO/$f" ] && printf '%s\0' "$f"
			done | tar -C "$REPO" --null -T - -cf - | tar -C "$dest" -xf -
	else
		tar -C "$REPO" --exclude=./.cluster -cf - . | tar -C "$dest" -xf -
	fi
}

test_pg15() {
	local e2e_pass=0 e2e_fail=0 e2e_skip=0 t rc target out line
	ensure_build_deps
	check_build "$REPO" PG_CONFIG="$PG_CONFIG" || { version_done "$(major_of "$PG_CONFIG")"; return; }
	build_and_install

	# Unit tests of the C core, plain and under ASan/UBSan.
	for target in unit unit-asan; do
		out=$(make -s "$target" 2>&1) || true
		printf '%s\n' "$out" | grep -E '^(FAIL|    )' >&2 || true
		line=$(printf '%s\n' "$out" | grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' | tail -1)
		if [ -n "$line" ]; then
			set -- $line
			tally "$target" "$2" "$4"
		else
			printf '%s\n' "$out" | tail -20 >&2
			tally "$target" 0 1
		fi
	done

	UPSELL_PORT=$PORT15 start_cluster
	run_regress "$REPO" "$PG_CONFIG"

	# End-to-end scripts: each exits 0 on success, 77 when it cannot run here.
	for t in test/e2e/*.sh; do
		[ -e "$t" ] || continue
		rc=0
		bash "$t" >"$t.log" 2>&1 || rc=$?
		if [ "$rc" = 0 ]; then
			e2e_pass=$((e2e_pass + 1))
			rm -f "$t.log"
		elif [ "$rc" = 77 ]; then
			e2e_skip=$((e2e_skip + 1))
			printf 'e2e skipped: %s: %s\n' "$t" "$(tail -1 "$t.log")" >&2
			rm -f "$t.log"
		else
			e2e_fail=$((e2e_fail + 1))
			printf 'e2e FAILED: %s\n' "$t" >&2
			tail -30 "$t.log" >&2
		fi
	done
	tally e2e "$e2e_pass" "$e2e_fail" "$e2e_skip"
	stop_cluster
	version_done "$(major_of "$PG_CONFIG")"
}

# 17: compile only.  trixie's postgresql-server-dev-17 has headers and no
# pg_config or PGXS (and its programs would need a newer glibc), so the
# build takes PGXS and compiler flags from $PG_CONFIG and the server headers
# from 17.
test_pg17() {
	local root inc dir
	if ! root=$("$REPO/scripts/pg_cache.sh" 17); then
		tally build 0 1
		version_done "PostgreSQL 17"
		return
	fi
	inc=$(ls -d "$root"/usr/include/postgresql/17/server)
	dir="$REPO/.cluster/build-17"
	copy_tree "$dir"
	# the fmgr layer only: src/core includes no server header
	check_build "$dir" PG_CONFIG="$PG_CONFIG" includedir_server="$inc" \
		includedir_internal="$inc" with_llvm=no \
		$(cd "$dir" && ls src/*.c | sed 's/\.c$/.o/') || true
	version_done "PostgreSQL $(sed -n 's/^#define PG_VERSION "\([^ "]*\).*/\1/p' "$inc/pg_config.h"), headers only"
}

test_pg18() {
	local cached dir cfg name
	if ! cached=$("$REPO/scripts/pg_cache.sh" 18); then
		tally build 0 1
		version_done "PostgreSQL 18"
		return
	fi
	# Everything happens on private copies: the cached build is shared by
	# every checkout on the machine and never changes after it is made.
	dir=$(CLUSTER_NAME=pg18 cluster_dir)
	if [ -f "$dir/data/postmaster.pid" ]; then	# left by an interrupted run
		as_cluster_owner "$dir/install/bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir/install" "$dir/data"
	cp -a "$cached" "$dir/install"
	cfg=$dir/install/bin/pg_config
	name=$(major_of "$cfg")
	copy_tree "$dir/src"
	if check_build "$dir/src" PG_CONFIG="$cfg"; then
		make -s -C "$dir/src" PG_CONFIG="$cfg" install >/dev/null
		local save_config=$PG_CONFIG save_bin=$PGBIN
		unset PGHOST PGPORT PGDATABASE
		PG_CONFIG=$cfg PGBIN=$dir/install/bin
		# The cached build has no rpath (it is copied around), so its server
		# and contrib modules (dblink) must find its own libpq, not Debian's
		# older one.
		local save_ld=${LD_LIBRARY_PATH:-}
		export LD_LIBRARY_PATH=$dir/install/lib${save_ld:+:$save_ld}
		CLUSTER_NAME=pg18 UPSELL_PORT=$((PORT15 + 1)) start_cluster
		run_regress "$dir/src" "$cfg"
		stop_cluster
		PG_CONFIG=$save_config PGBIN=$save_bin
		if [ -n "$save_ld" ]; then LD_LIBRARY_PATH=$save_ld; else unset LD_LIBRARY_PATH; fi
	fi
	version_done "$name"
}

trap stop_cluster EXIT
for v in $VERSIONS; do
	case $v in
		15) test_pg15 ;;
		17) test_pg17 ;;
		18) test_pg18 ;;
		*) say "unknown version $v in UPSELL_TEST_VERSIONS"; exit 2 ;;
	esac
done

if [ "$SKIPPED" -gt 0 ]; then
	printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
else
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
fi
[ "$FAILED" -eq 0 ]
