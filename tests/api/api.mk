# tests/api/api.mk — the API suite (the real daemon on free loopback ports,
# driven over HTTP by Python's standard library). It runs on the plain and
# on the ASan+UBSan build; under ASan, LeakSanitizer checks every clean
# shutdown (test_clean_cycle: upload, fit, results, SIGTERM).
#
#   make api-load     wrk against status and results while two fits run
#                     (tests/api/load.sh; not part of `make test`)
SAN_TEST_SCRIPTS += tests/api/run.sh
# The lab-service suite (tests/api/lab.sh: deletion, retention, quotas, a
# full disk on a tmpfs, tokens and SIGHUP, logs, metrics, the schema) on
# both builds too, and in the fast loop.
SAN_TEST_SCRIPTS += tests/api/lab.sh
CHECK_SCRIPTS += tests/api/lab.sh

.PHONY: api-load
api-load: $(BIN)
	LSMI_BUILD=$(BUILD) tests/api/load.sh

#   make api-valgrind valgrind's leak check over a full upload-fit-results-
#                     shutdown cycle (tests/api/valgrind.sh)
.PHONY: api-valgrind
api-valgrind: $(BIN)
	LSMI_BUILD=$(BUILD) tests/api/valgrind.sh

# The API suite is part of the fast loop too.
CHECK_SCRIPTS += tests/api/run.sh

#   make api-bench    what results requests cost on a 1,000,000-row result
#                     (tests/api/bench_results.py: RSS, own memory, latency
#                     of sorted pages, aggregates and exports; not part of
#                     `make test`)
.PHONY: api-bench
api-bench: $(BIN)
	LSMI_BUILD=$(BUILD) $(PYTHON) tests/api/bench_results.py
