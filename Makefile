# Makefile — builds the lsmi core library, the `lsmi` binary and the tests.
#
#   make                  build/lsmi
#   make test             warnings-as-errors build, every test suite, then the
#                         ASan+UBSan build of the unit and API tests
#   make SANITIZER=address  the same targets in build-address/ with
#                         -fsanitize=address,undefined
#   make install          PREFIX (default /usr/local) and DESTDIR honoured
#   make V=1              show the full compiler command lines
#
# Sub-makefiles (tests/*/*.mk, deploy/*.mk) add their own targets and append
# to TEST_BINS / TEST_SCRIPTS; this file stays the one place for flags.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= python3

SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD := build
SAN_FLAGS :=
else
BUILD := build-$(SANITIZER)
SAN_FLAGS := -fsanitize=$(SANITIZER),undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
endif

CORE_PKGS := openblas zlib jansson
SERVER_PKGS := libmicrohttpd jansson libuv sqlite3

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla
# The library and the daemon also build with -Wconversion: silent float/double
# narrowing is a numerics bug waiting to happen.
STRICT := -Wconversion -Wno-sign-conversion

# -O3 vectorises the elementwise loops (Adam, ReLU masks); -fno-math-errno
# lets sqrtf vectorise too. Never -ffast-math: the NaN checks must work.
OPT ?= -O3 -g
# -iquote, not -I: a project header such as server/sched.h must never stand
# in for the system's <sched.h>.
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -fno-math-errno $(WARN) -MMD -MP $(SAN_FLAGS) \
               -iquote core -iquote server
# User CFLAGS / LDFLAGS come last so that they win.
ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(CORE_PKGS) $(SERVER_PKGS) cmocka 2>/dev/null)
# OpenBLAS is not linked: core/openblas.c opens it when the "blas" kernels
# need it (never, on a CPU with AVX-512F). Its headers still come from
# CORE_PKGS; the benchmarks that call it directly link OPENBLAS_LIBS.
CORE_LIBS := $(shell $(PKG_CONFIG) --libs $(filter-out openblas,$(CORE_PKGS)) 2>/dev/null) -ldl -lpthread -lm
OPENBLAS_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null)
# libmicrohttpd is not linked into the binary: server/mhd.c opens it when
# the daemon starts (with GnuTLS it cost every command ~1.3 ms to load).
SERVER_LIBS := $(shell $(PKG_CONFIG) --libs $(filter-out libmicrohttpd,$(SERVER_PKGS)) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

ifeq ($(V),1)
Q :=
else
Q := @
endif

CORE_SRCS := $(sort $(wildcard core/*.c))
SERVER_SRCS := $(sort $(wildcard server/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
SERVER_OBJS := $(SERVER_SRCS:%.c=$(BUILD)/%.o)
# Everything of the binary except main(), for the server unit tests.
SERVER_LIB_OBJS := $(filter-out $(BUILD)/server/main.o,$(SERVER_OBJS))

LIB := $(BUILD)/liblsmi.a
BIN := $(BUILD)/lsmi

CORE_TEST_SRCS := $(sort $(wildcard tests/core/test_*.c))
SERVER_TEST_SRCS := $(sort $(wildcard tests/server/test_*.c))
CORE_TESTS := $(CORE_TEST_SRCS:%.c=$(BUILD)/%)
SERVER_TESTS := $(SERVER_TEST_SRCS:%.c=$(BUILD)/%)

# Suites that `make test` runs: cmocka binaries, and commands (scripts that
# print "N passed, N failed" as their last such line).
TEST_BINS := $(CORE_TESTS) $(SERVER_TESTS)
TEST_SCRIPTS :=

.PHONY: all lsmi lib suites test clean install uninstall format
all: $(BIN)
lsmi: $(BIN)
lib: $(LIB)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(STRICT) -c -o $@ $<

$(LIB): $(CORE_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(SERVER_OBJS) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $(SERVER_OBJS) $(LIB) $(SERVER_LIBS) $(CORE_LIBS) $(LDFLAGS)

# Test sources may #include the .c under test; they are not held to -Wconversion.
$(BUILD)/tests/core/%: tests/core/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -iquote tests -o $@ $< $(LIB) $(CMOCKA_LIBS) $(CORE_LIBS) $(LDFLAGS)

$(BUILD)/tests/server/%: tests/server/%.c $(SERVER_LIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -iquote tests -o $@ $< $(SERVER_LIB_OBJS) $(LIB) $(CMOCKA_LIBS) $(SERVER_LIBS) $(CORE_LIBS) $(LDFLAGS)

-include $(sort $(wildcard tests/*/*.mk bench/*.mk deploy/*.mk))

# `make test` builds this tree and its sanitizer twin, writes each one's list
# of suites ($(BUILD)/suites: "BUILD_DIR EXECUTABLE" per line) and runs them
# all through tests/run.sh, whose last line is "lsmi: N passed, N failed".
# TEST_SCRIPTS run on the plain build only; SAN_TEST_SCRIPTS on both.
suites: $(BIN) $(TEST_BINS) $(TEST_EXTRA_DEPS)
	$(Q)rm -f $(BUILD)/suites
	$(Q)for t in $(TEST_BINS) $(SAN_TEST_SCRIPTS) $(if $(SANITIZER),,$(TEST_SCRIPTS)); do \
	  echo "$(BUILD) $$t" >> $(BUILD)/suites; done

ifeq ($(SANITIZER),)
test: suites
	$(Q)$(MAKE) --no-print-directory SANITIZER=address suites
	$(Q)tests/run.sh $(BUILD)/suites build-address/suites
else
test: suites
	$(Q)tests/run.sh $(BUILD)/suites
endif

clean:
	rm -rf build build-*

install: $(BIN) install-extra
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/lsmi

uninstall: uninstall-extra
	rm -f $(DESTDIR)$(BINDIR)/lsmi

format:
	clang-format -i core/*.c core/*.h server/*.c server/*.h tests/*/*.c

# The test binaries' own .d files too: a test rebuilds when a header it
# includes (tests/fixture.h, tests/check.h) changes.
-include $(CORE_OBJS:.o=.d) $(SERVER_OBJS:.o=.d) $(TEST_BINS:=.d)
