#!/usr/bin/env bash
# make test: set up like `make demo`, then run every test layer and end with
# one line "N passed, N failed".  Exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"

PASSED=0
FAILED=0
SKIPPED=0
tally() {	# layer passed failed [skipped]
	local skipped=""
	[ "${4:-0}" -gt 0 ] && skipped=", $4 skipped"
	printf "%-12s %d passed, %d failed%s\n" "$1:" "$2" "$3" "$skipped" >&2
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	SKIPPED=$((SKIPPED + ${4:-0}))
}

ensure_build_deps
ensure_pg_cron

# 1. Build: warning-free with -Wall -Wextra.
make -s clean PG_CONFIG="$PG_CONFIG" >/dev/null
if make PG_CONFIG="$PG_CONFIG" >build.log 2>&1; then
	if grep -q 'warning:' build.log; then
		grep 'warning:' build.log >&2
		tally build 0 1
	else
		tally build 1 0
	fi
else
	cat build.log >&2
	tally build 0 1
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	exit 1
fi
rm -f build.log
build_and_install

# 2. Unit tests of the C core, plain and under ASan/UBSan.
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

trap stop_cluster EXIT
start_cluster

# 3. pg_regress: SQL-visible behaviour (sql/*.sql against expected/*.out).
ntests=$(ls sql/*.sql | wc -l)
if make -s PG_CONFIG="$PG_CONFIG" installcheck >regress.log 2>&1; then
	tally regress "$ntests" 0
else
	cat regress.log >&2
	[ -f regression.diffs ] && head -200 regression.diffs >&2
	nfail=$(grep -cE '^(not ok|test .* FAILED|     .* \.\.\. FAILED)' regress.log || true)
	[ "$nfail" -gt 0 ] || nfail=1
	tally regress $((ntests - nfail)) "$nfail"
fi
rm -f regress.log

# 4. End-to-end scripts: each exits 0 on success, 77 when it cannot run here.
e2e_pass=0
e2e_fail=0
e2e_skip=0
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
if [ "$SKIPPED" -gt 0 ]; then
	printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
else
	printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
fi
[ "$FAILED" -eq 0 ]
