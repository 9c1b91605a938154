# bench/accuracy.mk — the accuracy benchmarks (not part of `make test`).
#
#   make accuracy         lsmi against the PyTorch reference bench/torch_ref.py
#                         on the gaussian demo of bench/make_data.py, seeds 1-5
#                         (needs python3-torch and python3-numpy, for
#                         /usr/bin/python3 or $LSMI_REF_PYTHON)
#   make accuracy-robust  the per-sample targets on data whose truth is known
#                         (bench/robust.py: lsmi synth mixed, XOR, a CLIP-sized
#                         set; needs python3-numpy; python3-torch only for its
#                         speed line), about 3 minutes
REF_PYTHON ?= $(or $(LSMI_REF_PYTHON),/usr/bin/python3)

.PHONY: accuracy accuracy-robust
accuracy: $(BIN)
	LSMI_BUILD=$(BUILD) $(PYTHON) bench/compare_reference.py

accuracy-robust: $(BIN)
	@$(REF_PYTHON) -c 'import numpy' 2>/dev/null || { \
	  echo "make accuracy-robust: $(REF_PYTHON) has no numpy: apt-get install python3-numpy, or set LSMI_REF_PYTHON"; exit 1; }
	$(REF_PYTHON) bench/robust.py --lsmi $(BIN) $(ROBUST_ARGS)
