# tests/browser/browser.mk — the dashboard in headless Chromium (Debian's
# chromium driven by puppeteer-core from tests/browser/package-lock.json):
# upload, job, progress, summary, charts, table, CSV download and an error,
# checked against the API, without and with tokens. On the plain build only:
# the page is the same on every build, and the API suite covers ASan.
#
#   make browser-test    just this suite
TEST_SCRIPTS += tests/browser/run.sh

.PHONY: browser-test
browser-test: $(BIN)
	LSMI_BUILD=$(BUILD) tests/browser/run.sh
