# tests/robust/robust.mk — the attacks and faults of issue 14 against the
# real daemon (tests/robust/attack.py): a slowloris of 1,100 half-requests,
# connections under ulimit -n 64, a disk that fills during a fit (a tmpfs;
# root only, skipped elsewhere), uploads and parameters that ask for
# gigabytes. About a minute; part of `make test` on the plain build.
#
#   make robust      run them alone
TEST_SCRIPTS += tests/robust/run.sh

.PHONY: robust
robust: $(BIN)
	LSMI_BUILD=$(BUILD) tests/robust/run.sh
