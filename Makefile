# Makefile — builds the lsmi core library, the `lsmi` binary and the tests.
#
#   make                  build/lsmi
#   make check            the fast loop: build, unit tests and API tests on
#                         the plain build (under a minute on 2 cores)
#   make test             the full suite: warnings-as-errors build, every test
#                         suite (unit, API, fuzzers, deploy, container,
#                         systemd, README tour, the tree standing alone), then
#                         the ASan+UBSan build of the unit and API tests
#   make SANITIZER=address  the same targets in build-address/ with
#                         -fsanitize=address,undefined
#   make install          PREFIX (default /usr/local) and DESTDIR honoured
#   make V=1              show the full compiler command lines
#   make JOBS=N           parallel jobs of check and test (default: all cores)
#
# Sub-makefiles (tests/*/*.mk, bench/*.mk, deploy/*.mk) add their own
# targets and append to TEST_BINS / TEST_SCRIPTS / CHECK_SCRIPTS; this file
# stays the one place for flags.

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

# The rooms of the tree and what each may use (the boundaries are the
# include paths each is compiled with, and tests/layout.sh):
#   common/  small helpers every room shares: lazy dlopen, durable file
#            writes, SHA-256; C11 + POSIX only
#   core/    the estimator library (public header core/lsmi.h): C11, libm,
#            pthreads; OpenBLAS's headers only (it is opened at run time)
#   io/      every dataset file format (public header io/lsmi_io.h): core's
#            public header, zlib, jansson
#   server/  `lsmi serve`: core, io, libmicrohttpd, jansson, libuv, SQLite,
#            libpq (the cluster mode's PostgreSQL store)
#   cli/     the `lsmi` binary's commands and main(): everything above
# liblsmi.a is core + common and links alone (-lm -lpthread -ldl);
# liblsmi_io.a adds the readers.
CORE_PKGS := openblas
IO_PKGS := zlib jansson
SERVER_PKGS := libmicrohttpd jansson libuv sqlite3 libpq

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
        -Wmissing-prototypes -Wvla
# The libraries and the daemon also build with -Wconversion: silent
# float/double narrowing is a numerics bug waiting to happen.
STRICT := -Wconversion -Wno-sign-conversion

# -O3 vectorises the elementwise loops (Adam, ReLU masks); -fno-math-errno
# lets sqrtf vectorise too. Never -ffast-math: the NaN checks must work.
OPT ?= -O3 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -fno-math-errno $(WARN) -MMD -MP $(SAN_FLAGS)
pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pkg_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

# -iquote, not -I: a project header such as server/sched.h must never stand
# in for the system's <sched.h>. The libraries export only what their
# public headers mark LSMI_API.
LIB_VIS := -fvisibility=hidden
COMMON_FLAGS := -iquote common $(LIB_VIS)
CORE_FLAGS := -iquote core -iquote common $(LIB_VIS) $(call pkg_cflags,$(CORE_PKGS))
IO_FLAGS := -iquote io -iquote core -iquote common $(LIB_VIS) $(call pkg_cflags,$(IO_PKGS))
SERVER_FLAGS := -iquote server -iquote io -iquote core -iquote common \
                $(call pkg_cflags,$(SERVER_PKGS) $(IO_PKGS))
CLI_FLAGS := -iquote cli $(SERVER_FLAGS)
TEST_FLAGS := -iquote tests $(call pkg_cflags,cmocka jansson)

# OpenBLAS is not linked: core/blas.c opens it when the "blas" kernels need
# it (never, on a CPU with AVX-512F); the benchmarks that call it directly
# link OPENBLAS_LIBS. libmicrohttpd is not linked either: server/mhd.c opens
# it when the daemon starts, so that no other command pays for loading it;
# nor libpq, which server/pq.c opens for `serve --store postgresql://` only.
CORE_LIBS := -ldl -lpthread -lm
IO_LIBS := $(call pkg_libs,$(IO_PKGS))
SERVER_LIBS := $(call pkg_libs,$(filter-out libmicrohttpd libpq,$(SERVER_PKGS)))
OPENBLAS_LIBS := $(call pkg_libs,openblas)
CMOCKA_LIBS := $(call pkg_libs,cmocka)

ifeq ($(V),1)
Q :=
else
Q := @
endif

objs = $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard $(1)/*.c)))
COMMON_OBJS := $(call objs,common)
CORE_OBJS := $(call objs,core)
IO_OBJS := $(call objs,io)
SERVER_OBJS := $(call objs,server)
CLI_OBJS := $(call objs,cli)
ALL_OBJS := $(COMMON_OBJS) $(CORE_OBJS) $(IO_OBJS) $(SERVER_OBJS) $(CLI_OBJS)
# Everything of the binary but main(), for the cli unit tests.
CLI_LIB_OBJS := $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJS))

LIB := $(BUILD)/liblsmi.a
IO_LIB := $(BUILD)/liblsmi_io.a
BIN := $(BUILD)/lsmi

# Unit tests mirror the sources: tests/ROOM/test_*.c, one binary each.
tests_of = $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/$(1)/test_*.c)))
COMMON_TESTS := $(call tests_of,common)
CORE_TESTS := $(call tests_of,core)
IO_TESTS := $(call tests_of,io)
SERVER_TESTS := $(call tests_of,server)
CLI_TESTS := $(call tests_of,cli)

# Suites that `make test` runs: cmocka binaries, and commands (scripts whose
# last result line is "N passed, N failed[, N skipped]").
TEST_BINS := $(COMMON_TESTS) $(CORE_TESTS) $(IO_TESTS) $(SERVER_TESTS) $(CLI_TESTS)
TEST_SCRIPTS := tests/standalone.sh tests/layout.sh
CHECK_SCRIPTS := tests/layout.sh

.PHONY: all lsmi lib suites check-suites check test clean install uninstall format
all: $(BIN)
lsmi: $(BIN)
lib: $(LIB) $(IO_LIB)

$(BUILD)/common/%.o: ROOM_FLAGS = $(COMMON_FLAGS)
$(BUILD)/core/%.o: ROOM_FLAGS = $(CORE_FLAGS)
$(BUILD)/io/%.o: ROOM_FLAGS = $(IO_FLAGS)
$(BUILD)/server/%.o: ROOM_FLAGS = $(SERVER_FLAGS)
$(BUILD)/cli/%.o: ROOM_FLAGS = $(CLI_FLAGS)

# User CFLAGS / LDFLAGS come last so that they win.
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(ROOM_FLAGS) $(STRICT) $(CFLAGS) -c -o $@ $<

$(LIB): $(CORE_OBJS) $(COMMON_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(IO_LIB): $(IO_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJS) $(SERVER_OBJS) $(IO_LIB) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $(CLI_OBJS) $(SERVER_OBJS) $(IO_LIB) $(LIB) \
	  $(SERVER_LIBS) $(IO_LIBS) $(CORE_LIBS) $(LDFLAGS)

# Test sources may #include the .c under test; they are not held to
# -Wconversion. Each room's tests see that room's headers.
test_link = $(Q)$(CC) $(BASE_CFLAGS) $(1) $(TEST_FLAGS) $(CFLAGS) -o $@ $< $(2) \
  $(CMOCKA_LIBS) $(call pkg_libs,jansson) $(CORE_LIBS) $(LDFLAGS)
$(BUILD)/tests/common/%: tests/common/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(COMMON_FLAGS),$(LIB))

$(BUILD)/tests/core/%: tests/core/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(CORE_FLAGS),$(LIB))

$(BUILD)/tests/io/%: tests/io/%.c $(IO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(IO_FLAGS),$(IO_LIB) $(LIB) $(IO_LIBS))

$(BUILD)/tests/server/%: tests/server/%.c $(SERVER_OBJS) $(IO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(SERVER_FLAGS),$(SERVER_OBJS) $(IO_LIB) $(LIB) $(SERVER_LIBS) $(IO_LIBS))

$(BUILD)/tests/cli/%: tests/cli/%.c $(CLI_LIB_OBJS) $(SERVER_OBJS) $(IO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(CLI_FLAGS),$(CLI_LIB_OBJS) $(SERVER_OBJS) $(IO_LIB) $(LIB) $(SERVER_LIBS) $(IO_LIBS))

-include $(sort $(wildcard tests/*/*.mk bench/*.mk deploy/*.mk))

# `make test` builds this tree and its sanitizer twin, writes each one's list
# of suites ($(BUILD)/suites: "BUILD_DIR EXECUTABLE" per line) and runs them
# all through tests/run.sh, whose last line is "lsmi: N passed, N failed,
# N skipped". TEST_SCRIPTS run on the plain build only; SAN_TEST_SCRIPTS on
# both. `make check` runs the unit binaries and CHECK_SCRIPTS of the plain
# build, TEST_JOBS suites at a time.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SUB_MAKE = $(MAKE) --no-print-directory -j$(JOBS)

suites: $(BIN) $(TEST_BINS) $(TEST_EXTRA_DEPS)
	$(Q)rm -f $(BUILD)/suites
	$(Q)for t in $(TEST_BINS) $(SAN_TEST_SCRIPTS) $(if $(SANITIZER),,$(TEST_SCRIPTS)); do \
	  echo "$(BUILD) $$t" >> $(BUILD)/suites; done

check-suites: $(BIN) $(TEST_BINS)
	$(Q)rm -f $(BUILD)/check-suites
	$(Q)for t in $(TEST_BINS) $(CHECK_SCRIPTS); do \
	  echo "$(BUILD) $$t" >> $(BUILD)/check-suites; done

check:
	$(Q)$(SUB_MAKE) check-suites
	$(Q)TEST_JOBS=$(JOBS) tests/run.sh $(BUILD)/check-suites

ifeq ($(SANITIZER),)
test:
	$(Q)$(SUB_MAKE) suites
	$(Q)$(SUB_MAKE) SANITIZER=address suites
	$(Q)tests/run.sh $(BUILD)/suites build-address/suites
else
test:
	$(Q)$(SUB_MAKE) suites
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
	clang-format -i common/*.[ch] core/*.[ch] io/*.[ch] server/*.[ch] cli/*.[ch] tests/*/*.c

# The test binaries' own .d files too: a test rebuilds when a header it
# includes (tests/fixture.h, tests/check.h) changes.
-include $(ALL_OBJS:.o=.d) $(TEST_BINS:=.d)
