# tests/fuzz/fuzz.mk — libFuzzer harnesses for the dataset readers.
#
#   make fuzz                 build every harness into build-fuzz/ and run
#                             each for FUZZ_SECONDS (default 30), seeded with
#                             the fixtures in tests/data/
#   make fuzz-build           just build them
#   make fuzz FUZZ_SECONDS=300
#
# The harnesses link the reader sources directly (not build/liblsmi.a), all
# built by clang with -fsanitize=fuzzer,address,undefined. `make test` runs
# tests/fuzz/run.sh, which builds them and reports "N passed, N failed", one
# per harness; crashes land in build-fuzz/artifacts/.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_DIR := build-fuzz
FUZZ_READERS := npz npy pt safetensors csv json
FUZZ_SRCS := core/status.c core/rng.c core/split.c core/dataset.c common/sha256.c \
             common/durable.c \
             $(sort $(wildcard io/*.c))
FUZZ_BINS := $(FUZZ_READERS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -iquote io -iquote core -iquote common \
               -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
               $(shell $(PKG_CONFIG) --cflags zlib jansson 2>/dev/null)
FUZZ_LIBS := $(shell $(PKG_CONFIG) --libs zlib jansson 2>/dev/null) -lm

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_SRCS) \
                    $(wildcard io/*.h core/*.h common/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) $(FUZZ_LIBS)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

TEST_SCRIPTS += tests/fuzz/run.sh
