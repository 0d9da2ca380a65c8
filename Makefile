# sidewatch: the one build entry.
#
#   make                      build ./sidewatch (installs missing Debian packages first)
#   make run                  build, then run sidewatch on its embedded default config
#   make test                 build, then run every test (unit, conformance, PromQL, integration)
#   make check-promql         PromQL test scripts: ours must pass, the corpus must stay above its floor
#   make bench                run the benchmarks side by side with the real Prometheus tools
#   make SANITIZER=address    build instrumented binaries under build/address/
#   make SANITIZER=address check-unit   unit + conformance tests under ASan (also: undefined)

CC        ?= cc
SANITIZER ?=
PYTHON    ?= /usr/bin/python3
SHARED    ?= $(abspath ../shared)
VERSION   := 0.1.0

ifeq ($(SANITIZER),)
BUILD     := build/release
BIN       := sidewatch
OPT       := -O2
else
BUILD     := build/$(SANITIZER)
BIN       := $(BUILD)/sidewatch
OPT       := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
endif

PKGS      := libcurl libmicrohttpd yaml-0.1 libprotobuf-c sqlite3 libpcre2-8 jansson zlib libcrypto
DEPS_OK   := build/.deps-ok

# Deferred (=) so pkg-config runs after the dependency step installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

CFLAGS   ?= -g
CFLAGS   += $(OPT) -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
            -D_GNU_SOURCE -pthread -Iagent -Iexporter -I$(BUILD)/gen \
            -DSIDEWATCH_VERSION='"$(VERSION)"'
LDFLAGS  += $(if $(SANITIZER),-fsanitize=$(SANITIZER),)
LDLIBS    = $(PKG_LIBS) -lm -pthread

AGENT_SRC    := $(wildcard agent/*.c agent/promql/*.c)
EXPORTER_SRC := $(wildcard exporter/*.c)
AGENT_OBJ    := $(AGENT_SRC:%.c=$(BUILD)/%.o)
EXPORTER_OBJ := $(EXPORTER_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ      := $(filter-out $(BUILD)/agent/main.o,$(AGENT_OBJ)) $(EXPORTER_OBJ)
LIB          := $(BUILD)/libsidewatch.a

UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_LIBS    = $(LDLIBS) $(shell pkg-config --libs cmocka)

.PHONY: all run test check-unit check-conformance check-promql check-integration bench fuzz clean deps format

all: $(BIN)

deps: $(DEPS_OK)

$(DEPS_OK): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(dir $@) && touch $@

ifeq ($(SANITIZER),)
$(BIN): $(BUILD)/sidewatch
	cp $< $@
endif

$(BUILD)/sidewatch: $(AGENT_OBJ) $(EXPORTER_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# Tests link against an archive, so each pulls in only the modules it uses.
$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/test_%: tests/unit/test_%.c tests/unit/testutil.h $(LIB) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDFLAGS) $(UNIT_LIBS)

-include $(AGENT_OBJ:.o=.d) $(EXPORTER_OBJ:.o=.d)

run: all
	./sidewatch

# Unit tests (one cmocka binary per module) and the conformance suites read
# from ../shared. Every binary runs even when one fails; the summary counts.
check-unit: $(UNIT_BIN) $(BIN)
	@SIDEWATCH_SHARED=$(SHARED) SIDEWATCH_BIN=$(abspath $(BIN)) tests/run-unit.sh $(UNIT_BIN)

# PromQL test scripts (Prometheus's promqltest format): tests/data/promql/*.test
# must all pass; over the corpus in $(SHARED)/conformance/promql each file must
# pass at least the float evals in tests/data/promql-conformance-floor.txt.
check-promql: $(BIN)
	@SIDEWATCH_SHARED=$(SHARED) SIDEWATCH_BIN=$(abspath $(BIN)) BUILD=$(BUILD) tests/run-promql.sh

check-integration: $(BIN)
	SIDEWATCH_SHARED=$(SHARED) SIDEWATCH_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -rs tests/integration

test: all
	$(MAKE) check-unit
	$(MAKE) check-promql
	$(MAKE) check-integration

$(BUILD)/bench/%: bench/%.c $(LIB) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

bench: all $(BENCH_BIN)
	BUILD=$(BUILD) bench/run.sh

clean:
	rm -rf build sidewatch

format:
	clang-format -i agent/*.[ch] exporter/*.[ch] tests/unit/*.[ch]
