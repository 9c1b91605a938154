# bench/cluster.mk — the cluster mode: its PostgreSQL layer, and real
# nodes (not part of `make test`; figures in doc/cluster.md).
#
#   make bench-cluster          bench/pg_cluster.c on a throwaway server
#                               (tests/cluster/pg.sh), TCP loopback and fsync
#                               on, as a deployment runs; about a minute
#   make bench-cluster CLUSTER_BENCH_ARGS='--skip-blobs --samples 2000'
#   make bench-cluster CLUSTER_PG_ARGS=   a Unix socket, fsync off
#
# The binary links the daemon's objects and libpq itself (for the large
# objects it compares the bytea blobs with).
CLUSTER_BENCH := $(BUILD)/bench/pg_cluster
CLUSTER_PG_ARGS ?= --tcp --fsync
CLUSTER_BENCH_ARGS ?=

$(CLUSTER_BENCH): bench/pg_cluster.c $(SERVER_OBJS) $(IO_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(SERVER_FLAGS) $(CFLAGS) -o $@ $< $(SERVER_OBJS) \
	  $(IO_LIB) $(LIB) $(SERVER_LIBS) $(IO_LIBS) $(call pkg_libs,libpq) $(CORE_LIBS) $(LDFLAGS)

.PHONY: bench-cluster
bench-cluster: $(CLUSTER_BENCH)
	tests/cluster/pg.sh $(CLUSTER_PG_ARGS) $(CLUSTER_BENCH) $(CLUSTER_BENCH_ARGS)

# The cluster mode with real daemons (bench/cluster_nodes.py): demo-size
# batches on one SQLite node, one cluster node and two, and how soon an
# idle node starts a queued job; TCP loopback and fsync on.
#
#   make bench-cluster-nodes
#   make bench-cluster-nodes CLUSTER_NODES_ARGS='--rounds 5 --jobs 40'
#   make bench-cluster-nodes CLUSTER_NODES_ARGS='--param folds=3 --samples 0'
CLUSTER_NODES_ARGS ?=

.PHONY: bench-cluster-nodes
bench-cluster-nodes: $(BIN)
	LSMI_BUILD=$(BUILD) tests/cluster/pg.sh $(CLUSTER_PG_ARGS) python3 bench/cluster_nodes.py $(CLUSTER_NODES_ARGS)
