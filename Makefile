# upsell — PGXS build.  `make demo` and `make test` are the two entry points
# (see README.md); everything else here is ordinary PGXS.

EXTENSION   = upsell
EXTVERSION  = 1.0
MODULE_big  = upsell

# Pure algorithms (no server headers) live in src/core; the fmgr layer in src.
CORE_SRCS   = $(sort $(wildcard src/core/*.c))
FMGR_SRCS   = $(sort $(wildcard src/*.c))
OBJS        = $(CORE_SRCS:.c=.o) $(FMGR_SRCS:.c=.o)

# The install script is assembled from one fragment per layer, in name order
# (src/sql/NN_layer.sql), so each layer's SQL sits next to its concern.
SQL_FRAGMENTS = $(sort $(wildcard src/sql/*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*--*.sql))

REGRESS     = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src/core -Wall -Wextra -Wno-unused-parameter \
              -Wno-sign-compare -Wno-missing-field-initializers
EXTRA_CLEAN = test/unit/run_unit test/bench/gen_orders

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(SQL_FRAGMENTS)
	cat $^ > $@

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

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench: test/bench/gen_orders
	scripts/bench.sh

.PHONY: unit unit-asan demo test bench
