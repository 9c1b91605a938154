# bench/accuracy.mk — `make accuracy`: lsmi against the PyTorch
# reference bench/torch_ref.py on the gaussian demo of bench/make_data.py,
# seeds 1-5 (needs python3-torch and python3-numpy, for /usr/bin/python3 or
# $LSMI_REF_PYTHON; not part of `make test`).
.PHONY: accuracy
accuracy: $(BIN)
	LSMI_BUILD=$(BUILD) $(PYTHON) bench/compare_reference.py
