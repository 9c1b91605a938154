# bench/bench.mk — the benchmark suite (not part of `make test`).
#
#   make bench                  every case, lsmi against the PyTorch reference,
#                               and the scaling table (about 20-30 minutes)
#   make bench-quick            the small cases only; the reference only where
#                               it takes under a minute (LSMI_BENCH_QUICK=1 in
#                               the environment does the same for `make bench`)
#   make bench BENCH_ARGS='--cases demo,n20k-d128-C10 --no-scaling'
#   make bench BENCH_WORK=/var/tmp/lsmi-bench   keep the data out of build/
#
# The driver (bench/bench.py, Python stdlib only) generates the data with
# bench/make_data.py, runs build/lsmi and the PyTorch reference
# bench/torch_ref.py (both under $LSMI_REF_PYTHON, else /usr/bin/python3, with
# python3-torch and python3-numpy), and writes a markdown table to stdout and
# to $(BENCH_WORK)/results.md (raw numbers in results.json). sgemm_peak is the
# single-thread sgemm yardstick, on the kernels lsmi itself would choose.

BENCH_PEAK := $(BUILD)/bench/sgemm_peak
BENCH_ARGS ?=
# Generated data (up to ~0.5 GB for the big case) is kept here between runs.
BENCH_WORK ?= $(BUILD)/bench-work

# Every benchmark binary is one source file, linked with the core (which
# holds the OpenBLAS set-up lsmi itself runs) and with OpenBLAS itself
# (sgemm_peak calls it directly).
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) $(CORE_FLAGS) $(STRICT) $(CFLAGS) -o $@ $< $(LIB) $(CORE_LIBS) $(OPENBLAS_LIBS) $(LDFLAGS)

.PHONY: bench bench-quick bench-peak
bench-peak: $(BENCH_PEAK)
	$(BENCH_PEAK)

bench: $(BIN) $(BENCH_PEAK)
	$(PYTHON) bench/bench.py --lsmi $(BIN) --peak $(BENCH_PEAK) \
	  --work $(BENCH_WORK) $(BENCH_ARGS)

bench-quick: $(BIN) $(BENCH_PEAK)
	$(PYTHON) bench/bench.py --quick --lsmi $(BIN) --peak $(BENCH_PEAK) \
	  --work $(BENCH_WORK) $(BENCH_ARGS)

# mlp_step: microseconds per discriminator training step and its phases
# (forward, cross-entropy, backward, Adam) on the shapes of the cases.
BENCH_MLP_STEP := $(BUILD)/bench/mlp_step

.PHONY: bench-mlp-step
bench-mlp-step: $(BENCH_MLP_STEP)
	$(BENCH_MLP_STEP)

# knife_step: microseconds per KNIFE training step (loss+backward, Adam) and
# per 1024-row logpdf block, thread CPU time (`make bench-knife`).
BENCH_KNIFE := $(BUILD)/bench/knife_step

.PHONY: bench-knife
bench-knife: $(BENCH_KNIFE)
	$(BENCH_KNIFE)

# gemm_shapes: GFLOP/s of lsmi_gemm on the products of a training step, for
# each kernel set this CPU runs (`make bench-gemm`).
BENCH_GEMM := $(BUILD)/bench/gemm_shapes

.PHONY: bench-gemm
bench-gemm: $(BENCH_GEMM)
	$(BENCH_GEMM)

# stream: memory bandwidth (copy, triad, Adam-like update) on 1 and 2
# threads over arrays far larger than the caches, and (--sweep) the update's
# bandwidth by working set: the memory ceiling of doc/roofline.md
# (`make bench-stream`).
BENCH_STREAM := $(BUILD)/bench/stream

.PHONY: bench-stream
bench-stream: $(BENCH_STREAM)
	$(BENCH_STREAM) --sweep
