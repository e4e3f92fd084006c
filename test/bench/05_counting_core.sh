#!/usr/bin/env bash
# Benchmark part: the pair-counting core (src/core/cooccur.c) as a plain C
# program (test/bench/cooc_bench.c), without the server: CPU time on one
# core of collecting the lines and counting them, the two-worker shape
# (larger half made into a partial state, then the combine and finish the
# leader does), and the core's peak memory (lines + count + result, every
# allocation tracked).  On FIMI retail (908,576 lines, long baskets) and on
# the synthetic shop of this run (gen_orders, BENCH_LINES lines).
source "$(dirname "$0")/lib.sh"

make -s test/bench/cooc_bench test/bench/gen_orders >/dev/null
RUNS=${BENCH_RUNS:-3}

report() {	# label, then cooc_bench's output on stdin
	local label=$1 out
	out=$(cat)
	printf '%s\n' "$out" | sed "s/^/  /"
	local count peak half combine
	count=$(printf '%s\n' "$out" | awk '/^count/ {print $3}')
	peak=$(printf "%s\n" "$out" | awk "/^peak memory/ {print \$(NF-5)}")
	half=$(printf '%s\n' "$out" | awk '/^two workers/ {print $5}')
	combine=$(printf '%s\n' "$out" | awk '/^two workers/ {print $8}')
	result "counting core on $label: count $count ms CPU, peak memory $peak MB; two workers: half $half ms + combine and finish $combine ms (load average $(cut -d' ' -f1 /proc/loadavg))"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (CPU times, not wall times: others' load inflates them less)"
echo "FIMI retail (test/data/retail.dat):"
test/bench/cooc_bench -r "$RUNS" fimi test/data/retail.dat | report "retail"
echo "synthetic shop, $BENCH_LINES lines (gen_orders -s ${BENCH_SEED:-42}):"
test/bench/gen_orders -s "${BENCH_SEED:-42}" -n "$BENCH_LINES" lines |
	test/bench/cooc_bench -r "$RUNS" lines - | report "the $BENCH_LINES-line shop"
