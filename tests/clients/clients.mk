# tests/clients/clients.mk — the client libraries against a real daemon:
# clients/python (lsmi_client) through tests/clients/run.sh, with Debian's
# Python and its NumPy and pandas. Part of `make test` on the plain build.
TEST_SCRIPTS += tests/clients/run.sh
