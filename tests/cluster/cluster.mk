# tests/cluster/cluster.mk — the cluster mode's PostgreSQL store against a
# real PostgreSQL.
#
# tests/cluster/run.sh starts a throwaway server (tests/cluster/pg.sh:
# initdb into a temp directory, as an unprivileged user under root) and
# runs build*/tests/cluster/test_pgstore against it, on the plain and on
# the ASan+UBSan build. The binary is not in TEST_BINS: without its server
# it has nothing to test. tests/cluster/nodes.sh runs real `lsmi serve
# --store` nodes against another throwaway server
# (tests/cluster/test_nodes.py), on both builds too (the ASan build runs
# the tests that check the daemon's memory).
#
#   make cluster-test     both suites, on $(BUILD)
CLUSTER_TEST := $(BUILD)/tests/cluster/test_pgstore

$(CLUSTER_TEST): tests/cluster/test_pgstore.c $(SERVER_OBJS) $(IO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(call test_link,$(SERVER_FLAGS),$(SERVER_OBJS) $(IO_LIB) $(LIB) $(SERVER_LIBS) $(IO_LIBS))

TEST_EXTRA_DEPS += $(CLUSTER_TEST)
SAN_TEST_SCRIPTS += tests/cluster/run.sh tests/cluster/nodes.sh

.PHONY: cluster-test
cluster-test: $(CLUSTER_TEST) $(BIN)
	LSMI_BUILD=$(BUILD) tests/cluster/run.sh
	LSMI_BUILD=$(BUILD) tests/cluster/nodes.sh

-include $(CLUSTER_TEST).d
