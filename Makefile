# upsell — PGXS build.  `make demo` and `make test` are the two entry points
# (see README.md); everything else here is ordinary PGXS.

EXTENSION   = upsell
EXTVERSION  = 1.12
MODULE_big  = upsell

# Pure algorithms (no server headers) live in src/core; the fmgr layer in src.
CORE_SRCS   = $(sort $(wildcard src/core/*.c))
FMGR_SRCS   = $(sort $(wildcard src/*.c))
OBJS        = $(CORE_SRCS:.c=.o) $(FMGR_SRCS:.c=.o)

# The install script is assembled from one fragment per layer, in name order
# (src/sql/NN_layer.sql), so each layer's SQL sits next to its concern.
#
# Versions.  Every landed main that changes the SQL surface is a new minor
# version (README, "Upgrading").  Released versions, oldest first, are frozen
# as committed install scripts (upsell--1.0.sql, upsell--1.1.sql,
# upsell--1.2.sql, upsell--1.3.sql, upsell--1.4.sql, upsell--1.5.sql,
# upsell--1.6.sql, upsell--1.7.sql, upsell--1.8.sql, upsell--1.9.sql,
# upsell--1.10.sql, upsell--1.11.sql: exactly what their release commits
# built, checked by test/e2e/upgrade_*.sh); EXTVERSION is the version in the
# making, built from the fragments.
#
# Upgrades: one generated script from EVERY released version straight to
# EXTVERSION (upsell--1.0--1.12.sql, upsell--1.1--1.12.sql, ...,
# upsell--1.11--1.12.sql), never a chain of frozen steps.  PostgreSQL takes the
# shortest path, so a direct script is the one used even where an older step
# (say upsell--1.0--1.1.sql from an earlier install) is still in the
# extension directory.  A frozen step would be fragile: it creates its
# version's C functions by symbol from the one installed library, the new
# one, and fails as soon as that library lacks a symbol the old version had;
# a generated script only names symbols of the library it is built with.
# Each script is
#   src/upgrade/pre.sql       drop every member of the installed version but
#                             its configuration tables (those it marked for
#                             pg_dump), whatever version it is;
#   the install script        as it is: it creates every configuration table
#                             and its indexes IF NOT EXISTS (checked below),
#                             so the kept tables stay; the others were just
#                             dropped;
#   src/upgrade/A--B.post.sql each release step's ALTERs of the kept tables,
#                             from FROM up to EXTVERSION, in order;
#   src/upgrade/post.sql      what pre.sql took off the kept tables (checks
#                             calling upsell functions, registration views),
#                             in EXTVERSION's shape.
# A release: commit the built upsell--X.sql (git add -f), add X to RELEASED,
# raise EXTVERSION, start src/upgrade/X--NEXT.post.sql, name the release
# commit in a new test/e2e/upgrade_X.sh (see test/e2e/upgrade_1_11.sh).
SQL_FRAGMENTS = $(sort $(wildcard src/sql/*.sql))
RELEASED    = 1.0 1.1 1.2 1.3 1.4 1.5 1.6 1.7 1.8 1.9 1.10 1.11
INSTALL_SQL = $(EXTENSION)--$(EXTVERSION).sql
UPGRADE_SQL = $(foreach v,$(RELEASED),$(EXTENSION)--$(v)--$(EXTVERSION).sql)
STEP_POSTS  = $(foreach v,$(RELEASED),$(wildcard src/upgrade/$(v)--*.post.sql))
DATA_built  = $(INSTALL_SQL) $(UPGRADE_SQL)
DATA        = $(foreach v,$(RELEASED),$(EXTENSION)--$(v).sql)

REGRESS     = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src/core -Wall -Wextra -Wno-unused-parameter \
              -Wno-sign-compare -Wno-missing-field-initializers
EXTRA_CLEAN = test/unit/run_unit test/bench/gen_orders test/bench/cooc_bench

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else
# No PostgreSQL yet: `make deps` and `make dist` still work.
all install installcheck:
	@echo "$(PG_CONFIG) not found: set PG_CONFIG=/path/to/pg_config, or run 'make deps' (Debian)" >&2; exit 1
endif

# A configuration table (one the install script marks for pg_dump with
# pg_extension_config_dump) is kept by an upgrade, and the install script
# then runs around it: the table and its indexes must be created IF NOT
# EXISTS (named), or the build stops.
$(INSTALL_SQL): $(SQL_FRAGMENTS)
	cat $^ > $@.tmp
	@for t in $$(sed -n "s/.*pg_extension_config_dump('@extschema@\.\([a-z0-9_]*\)'.*/\1/p" $@.tmp); do \
		grep -q "^CREATE TABLE IF NOT EXISTS @extschema@\.$$t (" $@.tmp || \
			{ echo "$@: configuration table $$t is not created IF NOT EXISTS" >&2; rm -f $@.tmp; exit 1; }; \
		if grep -E "^CREATE (UNIQUE )?INDEX .*ON @extschema@\.$$t[ (]" $@.tmp | grep -v "INDEX IF NOT EXISTS [a-z0-9_]* ON" >&2; then \
			echo "$@: an index of configuration table $$t is not created IF NOT EXISTS with a name" >&2; rm -f $@.tmp; exit 1; \
		fi; \
	done
	mv $@.tmp $@

$(EXTENSION)--%--$(EXTVERSION).sql: src/upgrade/pre.sql $(INSTALL_SQL) $(STEP_POSTS) src/upgrade/post.sql
	( sed -e 's/@TO@/$(EXTVERSION)/g' src/upgrade/pre.sql; \
	  grep -v '^.echo Use "CREATE EXTENSION' $(INSTALL_SQL); \
	  from=; for v in $(RELEASED) $(EXTVERSION); do \
		if [ -n "$$from" ]; then cat src/upgrade/$$from--$$v.post.sql || exit 1; from=$$v; \
		elif [ "$$v" = "$*" ]; then from=$$v; fi; \
	  done; \
	  [ -n "$$from" ] || { echo "$*: not a released version (RELEASED = $(RELEASED))" >&2; exit 1; }; \
	  cat src/upgrade/post.sql ) > $@.tmp || { rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# Unit tests of the pure C core: no server needed.
UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
test/unit/run_unit: $(UNIT_SRCS) $(wildcard test/unit/*.h) $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CC) -std=c11 -O1 -g -Wall -Wextra -Werror -Isrc/core \
		$(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lm

unit: test/unit/run_unit
	test/unit/run_unit

# Same tests under AddressSanitizer and UBSan; a sanitizer report fails the run.
unit-asan:
	$(MAKE) -B test/unit/run_unit UNIT_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
	test/unit/run_unit

test/bench/gen_orders: test/bench/gen_orders.c
	$(CC) -O2 -Wall -Wextra -o $@ $< -lm

# The counting core timed as a plain program (bench part 05).
test/bench/cooc_bench: test/bench/cooc_bench.c $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CC) -std=c11 -O2 -Wall -Wextra -Isrc/core -o $@ $< src/core/cooccur.c src/core/sorting.c src/core/hugepages.c -lm

# The only step that installs OS packages (apt); demo, test and bench run it.
deps:
	scripts/deps.sh

demo: deps
	scripts/demo.sh

test: deps
	scripts/test.sh

bench: deps test/bench/gen_orders
	scripts/bench.sh

# The release tarball, from the committed HEAD: upsell-$(EXTVERSION).tar.gz
# (see .gitattributes for what stays out).  It builds with plain
# `make && make install` against any supported pg_config.
DISTNAME = $(EXTENSION)-$(EXTVERSION)
dist:
	@grep -q "^default_version = '$(EXTVERSION)'" $(EXTENSION).control || \
		{ echo "$(EXTENSION).control: default_version is not $(EXTVERSION)" >&2; exit 1; }
	@grep -q '"version": "$(EXTVERSION).0"' META.json || \
		{ echo "META.json: version is not $(EXTVERSION).0" >&2; exit 1; }
	@grep -q '^## \[$(EXTVERSION)\]' CHANGELOG.md || \
		{ echo "CHANGELOG.md: no section for $(EXTVERSION)" >&2; exit 1; }
	git archive --format=tar.gz --prefix=$(DISTNAME)/ -o $(DISTNAME).tar.gz HEAD
	@echo "$(DISTNAME).tar.gz"

.PHONY: unit unit-asan deps demo test bench dist

# Offline evaluation of cart completion on the public datasets (README: Offer quality).
eval:
	scripts/eval.sh

.PHONY: eval

# PGXS knows no header dependencies: an object older than a header it may
# include is built again, or a struct changed in serving.h crashed a server
# running the objects that missed it.
$(CORE_SRCS:.c=.o): $(wildcard src/core/*.h)
$(FMGR_SRCS:.c=.o): $(wildcard src/*.h src/core/*.h)
