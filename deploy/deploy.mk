# deploy/deploy.mk — installs what ships beside the binary (the systemd unit
# and the man page) and registers the deployment tests and the docs check.
# Included by the Makefile; `make install` / `make uninstall` depend on
# install-extra / uninstall-extra.
#
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#
# The unit's ExecStart is rewritten to $(BINDIR)/lsmi. UNITDIR defaults to
# $(PREFIX)/lib/systemd/system, which systemd searches for /usr and
# /usr/local alike.

UNITDIR ?= $(PREFIX)/lib/systemd/system
MAN1DIR ?= $(MANDIR)/man1

.PHONY: install-extra uninstall-extra
install-extra:
	install -d $(DESTDIR)$(MAN1DIR) $(DESTDIR)$(UNITDIR)
	install -m 0644 doc/lsmi.1 $(DESTDIR)$(MAN1DIR)/lsmi.1
	sed 's|/usr/local/bin/lsmi|$(BINDIR)/lsmi|g' deploy/lsmi.service \
	  > $(DESTDIR)$(UNITDIR)/lsmi.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/lsmi.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/lsmi.service.tmp $(DESTDIR)$(UNITDIR)/lsmi.service

uninstall-extra:
	rm -f $(DESTDIR)$(MAN1DIR)/lsmi.1 $(DESTDIR)$(UNITDIR)/lsmi.service

TEST_SCRIPTS += tests/deploy/probe.sh tests/deploy/entrypoint.sh \
                tests/deploy/manifests.sh tests/deploy/docs.sh \
                tests/deploy/install.sh tests/deploy/tour.sh \
                tests/deploy/container.sh tests/deploy/cluster-compose.sh \
                tests/deploy/systemd.sh

# The docs against `lsmi serve --help` and `lsmi fit --help`, and their links:
# a second or so, so part of the fast loop too.
CHECK_SCRIPTS += tests/deploy/docs.sh
