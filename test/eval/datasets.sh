# The public datasets of the offline evaluation: which files they are and how
# each is copied into its raw table (test/eval/raw_tables.sql).  Sourced after
# scripts/lib.sh (psql_q, say) by scripts/eval.sh and test/eval/sim/setup.sh;
# DATA is the folder the files are looked up in.

EVAL_DATASETS="groceries retail groceries-members superstore electronics"

# The first of the files given that DATA holds.
eval_find_file() {
	local f
	for f in "$@"; do
		if [ -f "$DATA/$f" ]; then printf '%s\n' "$DATA/$f"; return; fi
	done
}

# Creates the raw tables in the current database (PGDATABASE).
eval_raw_tables() {
	psql_q -f "$REPO/test/eval/raw_tables.sql"
}

# Copies one dataset's file (under its name in ../shared/data, or as its copy
# in test/data is named) into its raw table; says so and returns 1 when DATA
# holds none of them.
eval_load() {
	local ds=$1 table file
	local text="WITH (FORMAT text, DELIMITER E'\\x01')" csv="WITH (FORMAT csv, HEADER true)"
	case $ds in
	groceries) table="raw_groceries (line)" file=$(eval_find_file groceries/groceries.csv groceries.csv) ;;
	retail) table="raw_retail (line)" file=$(eval_find_file fimi-retail/retail.dat retail.dat) ;;
	groceries-members) table=raw_members file=$(eval_find_file groceries-members/Groceries_dataset.csv groceries-members.csv) ;;
	superstore) table=raw_superstore file=$(eval_find_file "superstore/Sample - Superstore.csv" superstore.csv) ;;
	electronics) table="raw_electronics (line)" file=$(eval_find_file electronics-sales-2019/Sales_January_2019.csv) ;;
	*) say "unknown dataset $ds"; return 1 ;;
	esac
	if [ -z "$file" ]; then
		say "skipping $ds: none of its files in $DATA"
		return 1
	fi
	case $ds in
	groceries-members | superstore) psql_q -c "COPY $table FROM STDIN $csv" <"$file" ;;
	# the year's twelve monthly files, one after another
	electronics) cat "$(dirname "$file")"/Sales_*_2019.csv | psql_q -c "COPY $table FROM STDIN $text" ;;
	*) psql_q -c "COPY $table FROM STDIN $text" <"$file" ;;
	esac
}
