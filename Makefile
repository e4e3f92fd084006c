# upsell — PGXS build.  `make demo` and `make test` are the two entry points
# (see README.md); everything else here is ordinary PGXS.

EXTENSION   = upsell
EXTVERSION  = 1.1
MODULE_big  = upsell

# Pure algorithms (no server headers) live in src/core; the fmgr layer in src.
CORE_SRCS   = $(sort $(wildcard src/core/*.c))
FMGR_SRCS   = $(sort $(wildcard src/*.c))
OBJS        = $(CORE_SRCS:.c=.o) $(FMGR_SRCS:.c=.o)

# The install script is assembled from one fragment per layer, in name order
# (src/sql/NN_layer.sql), so each layer's SQL sits next to its concern.
# Released versions are frozen as committed scripts (upsell--1.0.sql); the
# upgrade from the last release is its migration of the kept tables
# (src/upgrade/FROM--TO.pre.sql and .post.sql) around the new install script.
SQL_FRAGMENTS = $(sort $(wildcard src/sql/*.sql))
UPGRADE_FROM = 1.0
INSTALL_SQL = $(EXTENSION)--$(EXTVERSION).sql
UPGRADE_SQL = $(EXTENSION)--$(UPGRADE_FROM)--$(EXTVERSION).sql
DATA_built  = $(INSTALL_SQL) $(UPGRADE_SQL)
DATA        = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*.sql))

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

$(INSTALL_SQL): $(SQL_FRAGMENTS)
	cat $^ > $@

$(UPGRADE_SQL): src/upgrade/$(UPGRADE_FROM)--$(EXTVERSION).pre.sql $(SQL_FRAGMENTS) src/upgrade/$(UPGRADE_FROM)--$(EXTVERSION).post.sql
	{ cat $<; cat $(SQL_FRAGMENTS) | grep -v '^.echo Use "CREATE EXTENSION'; \
	  cat src/upgrade/$(UPGRADE_FROM)--$(EXTVERSION).post.sql; } > $@

# Unit tests of the pure C core: no server needed.
UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
test/unit/run_unit: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CC) -std=c11 -O1 -g -Wall -Wextra -Werror -Isrc/core \
		$(UNIT_CFLAGS) -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lm

unit: test/unit/run_unit
	test/unit/run_unit

# Same tests under AddressSanitizer and UBSan.
unit-asan:
	$(MAKE) -B test/unit/run_unit UNIT_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
	test/unit/run_unit

test/bench/gen_orders: test/bench/gen_orders.c
	$(CC) -O2 -Wall -Wextra -o $@ $< -lm

# The counting core timed as a plain program (bench part 05).
test/bench/cooc_bench: test/bench/cooc_bench.c $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CC) -std=c11 -O2 -Wall -Wextra -Isrc/core -o $@ $< src/core/cooccur.c src/core/hugepages.c -lm

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
