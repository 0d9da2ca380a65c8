# sidewatch: the one build entry.
#
#   make                      build ./sidewatch (installs missing Debian packages first)
#   make run                  build, then run sidewatch on its embedded default config
#   make test                 build, then run every test (unit, conformance, PromQL, integration)
#   make check-image          build the container image with a private Docker engine and run it (minutes)
#   make check-promql         PromQL test scripts: ours must pass, the corpus must stay above its floor
#   make bench                run the benchmarks side by side with the real Prometheus tools
#   make soak [SOAK_SECONDS=600]  ten minutes of 50 churning targets and 100 rules: RSS and fds
#                             must stay flat, nothing may fail (bench/soak.py; not in `make test`)
#   make SANITIZER=address    build instrumented binaries under build/address/
#   make SANITIZER=address check-unit   unit + conformance tests under ASan (also: undefined)
#   make fuzz [FUZZ_SECONDS=60]          build every tests/fuzz/fuzz_*.c with libFuzzer, ASan and
#                             UBSan (clang) and run each for FUZZ_SECONDS seconds

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

PKGS      := libcurl libmicrohttpd yaml-0.1 libprotobuf-c sqlite3 libpcre2-8 jansson zlib libcrypto snappy \
             gnutls libxcrypt
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
# exporter/metrics.proto -> C with protoc-c at build time; only exporter/
# includes the generated header. Likewise agent/remote.proto (remote write),
# included only by agent/rwproto.c.
GEN_DIR      := $(BUILD)/gen
PROTO_C      := $(GEN_DIR)/metrics.pb-c.c
PROTO_H      := $(GEN_DIR)/metrics.pb-c.h
PROTO_OBJ    := $(GEN_DIR)/metrics.pb-c.o
EXPORTER_OBJ += $(PROTO_OBJ)
RPROTO_C     := $(GEN_DIR)/remote.pb-c.c
RPROTO_H     := $(GEN_DIR)/remote.pb-c.h
RPROTO_OBJ   := $(GEN_DIR)/remote.pb-c.o
AGENT_OBJ    += $(RPROTO_OBJ)
LIB_OBJ      := $(filter-out $(BUILD)/agent/main.o,$(AGENT_OBJ)) $(EXPORTER_OBJ)
LIB          := $(BUILD)/libsidewatch.a

UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_LIBS    = $(LDLIBS) $(shell pkg-config --libs cmocka)

.PHONY: all run test check-unit check-conformance check-promql check-integration check-image bench soak fuzz clean deps format

all: $(BIN)

deps: $(DEPS_OK)

$(DEPS_OK): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(dir $@) && touch $@

ifeq ($(SANITIZER),)
$(BIN): $(BUILD)/sidewatch
	cp $< $@.tmp && mv -f $@.tmp $@
endif

$(BUILD)/sidewatch: $(AGENT_OBJ) $(EXPORTER_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# A pattern rule with two targets: one protoc-c run makes both files.
$(GEN_DIR)/%.pb-c.c $(GEN_DIR)/%.pb-c.h: exporter/%.proto | $(DEPS_OK)
	@mkdir -p $(GEN_DIR)
	protoc-c --proto_path=exporter --c_out=$(GEN_DIR) $(notdir $<)

$(GEN_DIR)/%.pb-c.c $(GEN_DIR)/%.pb-c.h: agent/%.proto | $(DEPS_OK)
	@mkdir -p $(GEN_DIR)
	protoc-c --proto_path=agent --c_out=$(GEN_DIR) $(notdir $<)

$(PROTO_OBJ): $(PROTO_C) $(PROTO_H) | $(DEPS_OK)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

$(RPROTO_OBJ): $(RPROTO_C) $(RPROTO_H) | $(DEPS_OK)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# Likewise the one agent module that includes the remote write header.
$(BUILD)/agent/rwproto.o: $(RPROTO_H)

# The first build has no .d files yet: exporter objects may include the
# generated header, so they wait for it.
$(filter-out $(PROTO_OBJ),$(EXPORTER_OBJ)): $(PROTO_H)

# Tests link against an archive, so each pulls in only the modules it uses.
$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/test_%: tests/unit/test_%.c tests/unit/testutil.h tests/unit/fakesrv.h $(LIB) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< $(LIB) $(LDFLAGS) $(UNIT_LIBS)

-include $(AGENT_OBJ:.o=.d) $(EXPORTER_OBJ:.o=.d)

# Keep the generated sources (make would delete them as intermediates).
.SECONDARY: $(PROTO_C) $(PROTO_H) $(RPROTO_C) $(RPROTO_H) $(FUZZ_DIR)/gen/metrics.pb-c.c \
    $(FUZZ_DIR)/gen/metrics.pb-c.h $(FUZZ_DIR)/gen/remote.pb-c.c $(FUZZ_DIR)/gen/remote.pb-c.h

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

# The integration tests mostly wait (scrape intervals, peers starting), so
# they run in TEST_JOBS pytest-xdist workers (4 on the 2-core CI machine; a
# test file stays on one worker, the private dockerd's tests share one);
# TEST_JOBS=0 runs them in one process.
TEST_JOBS ?= 4
check-integration: $(BIN)
	SIDEWATCH_SHARED=$(SHARED) SIDEWATCH_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -rs tests/integration \
	    --ignore=tests/integration/test_image.py -n $(TEST_JOBS) --dist loadgroup

# The container image for real (minutes; not part of `make test`, CI runs it
# once): makes debian:bookworm-slim with debootstrap (cached in
# build/image-base/), builds docker/Dockerfile in a private engine, runs it.
check-image: $(BIN)
	SIDEWATCH_SHARED=$(SHARED) SIDEWATCH_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -rs -s \
	    tests/integration/test_image.py

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

# The soak (issue 10): SOAK_SECONDS (default 600) in all, the first
# SOAK_WARMUP (120) not judged; SOAK_PROMETHEUS=0 leaves out the real
# Prometheus that runs alongside for comparison.
SOAK_SECONDS ?= 600
SOAK_WARMUP  ?= 120
soak: $(BIN)
	SIDEWATCH_BIN=$(abspath $(BIN)) SOAK_SECONDS=$(SOAK_SECONDS) SOAK_WARMUP=$(SOAK_WARMUP) $(PYTHON) bench/soak.py

# ---- fuzzing ----------------------------------------------------------------------
# Every tests/fuzz/fuzz_NAME.c is linked with all of agent/ (but main.c) and
# exporter/, built with clang's libFuzzer, ASan and UBSan into
# build/fuzz/fuzz_NAME, and run for FUZZ_SECONDS on build/fuzz/corpus-NAME
# (kept between runs), which starts from the seed directories in
# FUZZ_SEEDS_NAME. Crashes are written to build/fuzz/crash-NAME-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link -std=gnu11 \
                -Wall -Wextra -Werror -Wno-missing-field-initializers -D_GNU_SOURCE -pthread \
                -Iagent -Iexporter -I$(FUZZ_DIR)/gen -DSIDEWATCH_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(filter-out agent/main.c,$(AGENT_SRC)) $(EXPORTER_SRC)) \
                $(FUZZ_DIR)/obj/gen/metrics.pb-c.o $(FUZZ_DIR)/obj/gen/remote.pb-c.o
FUZZ_LIB     := $(FUZZ_DIR)/libsidewatch.a
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

FUZZ_SEEDS_config       := $(SHARED)/conformance/config tests/data/config
FUZZ_SEEDS_textparse    := $(SHARED)/conformance/exposition tests/data/exposition
FUZZ_SEEDS_chunkenc     :=
FUZZ_SEEDS_histchunk    := tests/data/fuzz-seeds/histchunk
FUZZ_ARGS_histchunk     := -max_len=8192
FUZZ_SEEDS_promql_parse := $(FUZZ_DIR)/seeds-promql_parse tests/data/fuzz-regressions/promql_parse
FUZZ_ARGS_config        := -max_len=65536
FUZZ_ARGS_promql_parse  := -max_len=4096
FUZZ_SEEDS_promql_eval  := $(FUZZ_DIR)/seeds-promql_parse tests/data/fuzz-regressions/promql_eval
FUZZ_SEEDS_docker_sd    := $(FUZZ_DIR)/seeds-docker_sd
FUZZ_ARGS_docker_sd     := -max_len=65536
FUZZ_ARGS_promql_eval   := -max_len=4096 -timeout=10
FUZZ_SEEDS_docker_events := $(FUZZ_DIR)/seeds-docker_events
FUZZ_ARGS_docker_events  := -max_len=65536
FUZZ_SEEDS_docker_stats := $(FUZZ_DIR)/seeds-docker_stats tests/data/docker-stats tests/data/fuzz-regressions/docker_stats
FUZZ_ARGS_docker_stats  := -max_len=16384
FUZZ_SEEDS_rulefmt      := $(SHARED)/conformance/rulefmt $(SHARED)/conformance/rules-unittest
FUZZ_ARGS_rulefmt       := -max_len=65536
FUZZ_SEEDS_protoparse   := tests/data/protobuf-seeds tests/data/fuzz-regressions/protoparse
FUZZ_ARGS_protoparse    := -max_len=65536
FUZZ_SEEDS_template     := tests/data/template
FUZZ_SEEDS_rwproto      := tests/data/fuzz-seeds/rwproto tests/data/fuzz-regressions/rwproto
FUZZ_ARGS_rwproto       := -max_len=65536
FUZZ_ARGS_template      := -max_len=4096 -timeout=10

$(FUZZ_DIR)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/gen/%.pb-c.c $(FUZZ_DIR)/gen/%.pb-c.h: exporter/%.proto | $(DEPS_OK)
	@mkdir -p $(FUZZ_DIR)/gen
	protoc-c --proto_path=exporter --c_out=$(FUZZ_DIR)/gen $(notdir $<)

$(FUZZ_DIR)/gen/%.pb-c.c $(FUZZ_DIR)/gen/%.pb-c.h: agent/%.proto | $(DEPS_OK)
	@mkdir -p $(FUZZ_DIR)/gen
	protoc-c --proto_path=agent --c_out=$(FUZZ_DIR)/gen $(notdir $<)

$(FUZZ_DIR)/obj/gen/%.pb-c.o: $(FUZZ_DIR)/gen/%.pb-c.c $(FUZZ_DIR)/gen/%.pb-c.h | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(EXPORTER_SRC)): $(FUZZ_DIR)/gen/metrics.pb-c.h
$(FUZZ_DIR)/obj/agent/rwproto.o: $(FUZZ_DIR)/gen/remote.pb-c.h

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) | $(DEPS_OK)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LDLIBS)

# PromQL seeds: the queries of the parser's test data and of the promqltest
# files, one per file, after an option byte that turns every option on.
$(FUZZ_DIR)/seeds-promql_parse: $(wildcard tests/data/promql-parse/*.txt)
	@rm -rf $@ && mkdir -p $@
	@{ sed -n 's/^in "\(.*\)"$$/\1/p' tests/data/promql-parse/*.txt; \
	   if [ -d $(SHARED)/conformance/promql ]; then \
	     sed -n 's/^ *eval[a-z_]* \(instant at [^ ]*\|range from [^ ]* to [^ ]* step [^ ]*\) //p' \
	       $(SHARED)/conformance/promql/*.test; fi; } | \
	  awk -v dir=$@ '{ f = sprintf("%s/seed-%05d", dir, NR); printf "\017%s", $$0 > f; close(f) }'

# Docker seeds: the captured engine bodies in $(SHARED)/docker, each after
# the two bytes fuzz_docker_events reads first (kind: 0 events, 1 list,
# 2 inspect, 3 info, 4 version, +0x80 to publish a snapshot; chunk size).
$(FUZZ_DIR)/seeds-docker_events: $(wildcard $(SHARED)/docker/*.json $(SHARED)/docker/*.ndjson)
	@rm -rf $@ && mkdir -p $@
	@for f in $(SHARED)/docker/*.ndjson; do [ -f "$$f" ] || continue; \
	   { printf '\200\007'; cat "$$f"; } > $@/events-$$(basename $$f); done
	@for f in $(SHARED)/docker/*containers-json*.json; do [ -f "$$f" ] || continue; \
	   { printf '\201\001'; cat "$$f"; } > $@/list-$$(basename $$f); done
	@for f in $(SHARED)/docker/*inspect*.json; do [ -f "$$f" ] || continue; \
	   { printf '\202\001'; cat "$$f"; } > $@/inspect-$$(basename $$f); done
	@for f in $(SHARED)/docker/*-info.json; do [ -f "$$f" ] || continue; \
	   { printf '\203\001'; cat "$$f"; } > $@/info-$$(basename $$f); done
	@for f in $(SHARED)/docker/*-version.json; do [ -f "$$f" ] || continue; \
	   { printf '\204\001'; cat "$$f"; } > $@/version-$$(basename $$f); done

# Docker stats seeds: every stats body captured in ../shared/docker, one per
# file (streamed captures split into their lines).
$(FUZZ_DIR)/seeds-docker_stats: $(wildcard $(SHARED)/docker/*-stats-*)
	@rm -rf $@ && mkdir -p $@
	@for f in $(SHARED)/docker/*-stats-*.json; do [ ! -f "$$f" ] || cp "$$f" $@/; done; \
	 for f in $(SHARED)/docker/*-stats-*.ndjson; do [ ! -f "$$f" ] || \
	   awk -v p="$@/$$(basename $$f)" '{ f = p "-" NR; print > f; close(f) }' "$$f"; done

# Docker discovery seeds: an option byte, a fixture's containers body, NUL,
# its networks body (tests/fuzz/fuzz_docker_sd.c).
$(FUZZ_DIR)/seeds-docker_sd: $(wildcard tests/data/docker-sd/*/containers/json.json)
	@rm -rf $@ && mkdir -p $@
	@n=0; for d in $(SHARED)/conformance/docker-sd/dockerprom $(SHARED)/conformance/docker-sd/dockeripv6 \
	    tests/data/docker-sd/annotated; do \
	  [ -f $$d/containers/json.json ] || continue; n=$$((n + 1)); \
	  { printf '\001'; cat $$d/containers/json.json; printf '\000'; cat $$d/networks.json; } > $@/seed-$$n; \
	done

define FUZZ_RUN
fuzz-$(1): $(FUZZ_DIR)/fuzz_$(1) $(filter $(FUZZ_DIR)/%,$(FUZZ_SEEDS_$(1)))
	@mkdir -p $(FUZZ_DIR)/corpus-$(1)
	@echo "== fuzz_$(1): $(FUZZ_SECONDS)s"
	$(FUZZ_DIR)/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crash-$(1)- $(FUZZ_ARGS_$(1)) \
	    $(FUZZ_DIR)/corpus-$(1) $$(wildcard $(FUZZ_SEEDS_$(1)))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RUN,$(n))))

.PHONY: $(FUZZ_NAMES:%=fuzz-%)
fuzz: $(FUZZ_NAMES:%=fuzz-%)

-include $(FUZZ_OBJ:.o=.d)

clean:
	rm -rf build sidewatch

format:
	clang-format -i agent/*.[ch] exporter/*.[ch] tests/unit/*.[ch]
