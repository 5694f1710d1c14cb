# ldmpipe — the one build entry.
#
#   make            build the daemons and tools into build/bin/
#   make deps       install missing Debian packages (quiet when all present)
#   make check      deps, build, unit tests (ASan+UBSan), fuzz regressions,
#                   golden and integration tests
#   make demo       run the whole pipeline on synthetic data
#   make bench      benchmarks against peers, printing ratios
#   make check-gpu  CUDA tests (prints a skip line where no device exists)
#   make fuzz       build the libFuzzer targets and run each FUZZ_TIME seconds
#   make clean
#
# Variables: BUILD (output folder, default build), CUDA=0 (no nvcc), V=1 (echo commands).

BUILD ?= build
CC ?= cc
FUZZCC ?= clang
FUZZ_TIME ?= 30
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
ifeq ($(NVCC),)
CUDA ?= 0
else
CUDA ?= 1
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKGS := libzmq jansson libprotobuf-c zlib libarchive libturbojpeg spng libwebp openblas lmdb
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

GEN := $(BUILD)/gen
WARN := -Wall -Wextra -Werror -Wno-format-zero-length -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-missing-field-initializers
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE $(WARN) -I. -Icommon -I$(GEN) $(PKG_CFLAGS) -MMD -MP
CFLAGS ?= -O2 -g
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS := $(PKG_LIBS) -lpthread -lm

# ---- sources -------------------------------------------------------------
PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:%.proto=$(GEN)/%.pb-c.c)
PROTO_H := $(PROTOS:%.proto=$(GEN)/%.pb-c.h)
LIB_SRC_ALL := $(sort $(wildcard common/*.c proto/*.c nn/*.c nn/cpu/*.c models/*.c))
DAEMONS := loaderd encoderd trainerd evald
TOOLS := $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/main.c))))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
SUITES := $(patsubst tests/unit/test_%.c,%,$(filter tests/unit/test_%.c,$(UNIT_SRC)))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
CUDA_SRC := $(sort $(wildcard nn/cuda/*.cu))
# a daemon's modules: all its files but main.c (linked into tests and benchmarks too)
DAEMON_MOD := $(filter-out %/main.c,$(wildcard $(DAEMONS:%=%/*.c)))

# nn/*_nocuda.c stand in for the CUDA backend in a build without it
ifeq ($(CUDA),1)
LIB_SRC := $(filter-out %_nocuda.c,$(LIB_SRC_ALL))
else
LIB_SRC := $(LIB_SRC_ALL)
endif

# objects: $(BUILD)/<flavour>/<path>.o ; flavours: rel (release), san (ASan+UBSan), fz (fuzz)
obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))
LIB_OBJ_REL := $(call obj,rel,$(LIB_SRC)) $(call obj,rel,$(PROTO_C:$(GEN)/%=%))
LIB_OBJ_SAN := $(call obj,san,$(LIB_SRC_ALL)) $(call obj,san,$(PROTO_C:$(GEN)/%=%))
LIB_OBJ_FZ := $(call obj,fz,$(LIB_SRC_ALL)) $(call obj,fz,$(PROTO_C:$(GEN)/%=%))

ifeq ($(CUDA),1)
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/cuda/%.o,$(CUDA_SRC))
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
# the CUDA backend: runtime, cuBLASLt (GEMMs), cuDNN (convolutions); libstdc++ for the
# objects nvcc emits (NCCL is opened at run time by nn/cuda/nccl.cu, not linked)
CUDA_LIBS := -L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lcudart -lcublasLt \
             -lcudnn -lstdc++
NVCCFLAGS ?= -O2 -std=c++17 -arch=sm_90 -Werror all-warnings -I. -Icommon -Xcompiler -Wall,-Wextra \
             -MMD -MP
# CUDA test programs: tests/cuda/cuda_NAME.c -> build/bin/cuda-NAME (plain C, no Check)
CUDA_TESTS := $(patsubst tests/cuda/cuda_%.c,$(BUILD)/bin/cuda-%,$(wildcard tests/cuda/cuda_*.c))
else
CUDA_OBJ :=
CUDA_LIBS :=
CUDA_TESTS :=
endif

BINS := $(addprefix $(BUILD)/bin/,$(DAEMONS) $(TOOLS))
# benchmark programs: bench/NAME/*.c -> build/bin/bench-NAME (run by bench/*.sh)
BENCHES := $(notdir $(patsubst %/,%,$(dir $(wildcard bench/*/main.c))))
BENCH_BINS := $(addprefix $(BUILD)/bin/bench-,$(BENCHES))
# test programs: tests/tools/NAME.c -> build/bin/NAME (stand-ins for peers in integration tests)
TEST_TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/bin/%,$(wildcard tests/tools/*.c))

.PHONY: all deps check check-unit check-fuzz-regress check-integration demo soak bench check-gpu fuzz clean
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BINS)

# ---- generated protobuf code -------------------------------------------------
$(GEN)/proto/%.pb-c.c $(GEN)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(GEN) $<

# generated sources compile like the rest (their path under GEN maps to proto/)
$(BUILD)/rel/proto/%.pb-c.o: $(GEN)/proto/%.pb-c.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes $(CFLAGS) -c $< -o $@
$(BUILD)/san/proto/%.pb-c.o: $(GEN)/proto/%.pb-c.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -O1 -g $(SAN_FLAGS) -c $< -o $@
$(BUILD)/fz/proto/%.pb-c.o: $(GEN)/proto/%.pb-c.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZCC) $(BASE_CFLAGS) -Wno-missing-prototypes -O1 -g -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@

# ---- objects -----------------------------------------------------------------
$(BUILD)/rel/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/san/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC san  $<"
	$(Q)$(CC) $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS) -c $< -o $@
$(BUILD)/fz/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	$(Q)$(FUZZCC) $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(BUILD)/cuda/%.o: %.cu
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/rel/libldm.a: $(LIB_OBJ_REL) $(CUDA_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/san/libldm.a: $(LIB_OBJ_SAN)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/fz/libldm.a: $(LIB_OBJ_FZ)
	$(Q)rm -f $@ && ar rcs $@ $^

# ---- binaries ----------------------------------------------------------------
define bin_rule
$(BUILD)/bin/$(1): $(call obj,rel,$(wildcard $(2)/*.c) $(3)) $(BUILD)/rel/libldm.a
	@mkdir -p $$(dir $$@)
	@echo "  LD      $$@"
	$(Q)$(CC) $(CFLAGS) -o $$@ $$^ $(LDLIBS) $(CUDA_LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call bin_rule,$(d),$(d))))
$(foreach t,$(TOOLS),$(eval $(call bin_rule,$(t),tools/$(t))))
$(foreach b,$(BENCHES),$(eval $(call bin_rule,bench-$(b),bench/$(b),$(DAEMON_MOD))))

# CUDA tests run where a GPU is, which may lack this build's other libraries:
# --as-needed keeps only those the program uses
$(BUILD)/bin/cuda-%: tests/cuda/cuda_%.c $(BUILD)/rel/libldm.a
	@mkdir -p $(dir $@)
	@echo "  CC LD   $@"
	$(Q)$(CC) $(BASE_CFLAGS) -isystem $(CUDA_HOME)/include $(CFLAGS) -o $@ $< \
	  $(BUILD)/rel/libldm.a -Wl,--as-needed $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/bin/%: $(BUILD)/rel/tests/tools/%.o $(BUILD)/rel/libldm.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(CUDA_LIBS)

# ---- unit tests (Check, ASan+UBSan) -----------------------------------------------
$(GEN)/suites.h: $(UNIT_SRC) Makefile
	@mkdir -p $(dir $@)
	$(Q)( for s in $(SUITES); do echo "SUITE($$s)"; done ) > $@.tmp && \
	  (cmp -s $@.tmp $@ || mv $@.tmp $@); rm -f $@.tmp

$(BUILD)/san/tests/unit/main.o: $(GEN)/suites.h
# daemon modules (all but main.c) are unit-tested too
$(BUILD)/bin/unit-tests: $(call obj,san,$(UNIT_SRC) $(DAEMON_MOD)) $(BUILD)/san/libldm.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

check-unit: $(BUILD)/bin/unit-tests
	@echo "== unit tests (ASan+UBSan)"
	$(Q)LDM_TEST_DATA=../shared/data ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 CK_DEFAULT_TIMEOUT=60 $(BUILD)/bin/unit-tests

# ---- fuzz targets ----------------------------------------------------------------
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fz/tests/fuzz/fuzz_%.o $(call obj,fz,$(DAEMON_MOD)) $(BUILD)/fz/libldm.a
	@mkdir -p $(dir $@)
	@echo "  LD fuzz $@"
	$(Q)$(FUZZCC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

fuzz: $(FUZZERS)
	$(Q)for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	  echo "== $$n for $(FUZZ_TIME)s"; \
	  $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $(BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
	    2>&1 | grep -E 'stat::number_of_executed_units|Done|ERROR|SUMMARY' || exit 1; done

# every seed of every target, once: a crash found before stays fixed
check-fuzz-regress: $(FUZZERS)
	@echo "== fuzz regressions"
	$(Q)for f in $(FUZZERS); do n=$$(basename $$f); \
	  if [ -d tests/fuzz/corpus/$$n ]; then $$f -runs=0 tests/fuzz/corpus/$$n >/dev/null 2>&1 \
	    || { echo "FAIL $$n"; $$f -runs=0 tests/fuzz/corpus/$$n 2>&1 | tail -20; exit 1; }; \
	  echo "ok   $$n ($$(ls tests/fuzz/corpus/$$n | wc -l) seeds)"; fi; done

# ---- integration tests ------------------------------------------------------------
check-integration: all $(TEST_TOOLS)
	@echo "== integration tests"
	$(Q)for t in $(sort $(wildcard tests/integration/*.sh)); do \
	  BIN=$(BUILD)/bin BUILD=$(BUILD) bash $$t || exit 1; done

check: deps
	$(Q)$(MAKE) --no-print-directory all $(TEST_TOOLS) $(BUILD)/bin/unit-tests $(FUZZERS)
	$(Q)$(MAKE) --no-print-directory check-unit check-fuzz-regress check-integration
	@echo "== make check: all passed"

# ---- GPU, demo, bench ---------------------------------------------------------------
check-gpu: all $(CUDA_TESTS)
	$(Q)if [ "$(CUDA)" != 1 ]; then echo "SKIP check-gpu: CUDA build off (no nvcc or CUDA=0)"; \
	elif ! nvidia-smi -L >/dev/null 2>&1; then echo "SKIP check-gpu: no CUDA device on this machine"; \
	else for t in $(sort $(wildcard tests/gpu/*.sh)); do BIN=$(BUILD)/bin bash $$t || exit 1; done; \
	  echo "== check-gpu: all passed"; fi

demo: deps all
	$(Q)BIN=$(BUILD)/bin DEMO_DIR=$${DEMO_DIR:-$(BUILD)/demo} bash tools/demo.sh

soak: all
	$(Q)BIN=$(BUILD)/bin bash tools/soak.sh

bench: all $(TEST_TOOLS) $(BENCH_BINS)
	$(Q)for b in $(sort $(wildcard bench/*.sh)); do echo "== $$b"; BIN=$(BUILD)/bin bash $$b || exit 1; done

deps:
	$(Q)sh tools/deps.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
