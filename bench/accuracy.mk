# bench/accuracy.mk — `make accuracy`: lsmi against the PyTorch
# reference on the gaussian demo, seeds 1-5 (needs python3-torch and
# python3-numpy; not part of `make test`).
.PHONY: accuracy
accuracy: $(BIN)
	LSMI_BUILD=$(BUILD) $(PYTHON) bench/compare_reference.py
