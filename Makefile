# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo

.PHONY: test typecheck demo install clean

# The full environment: training, export and tests.
$(BIN)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,export,dev]'
	touch $@

install: $(BIN)/.installed

test: $(BIN)/.installed typecheck
	$(BIN)/python -m pytest -q

# The TensorRT and CUDA code cannot run here: type-check it against tensorrt-stubs and cuda-python's types.
# tensorrt-stubs goes in without its dependencies (they would pull TensorRT itself from NVIDIA's index).
$(BIN)/.typecheck: $(BIN)/.installed
	$(BIN)/pip install -q mypy cuda-python
	$(BIN)/pip install -q --no-deps tensorrt-stubs
	touch $@

typecheck: $(BIN)/.typecheck
	$(BIN)/python tools/trt_stubs.py .mypy_stubs
	MYPYPATH=.mypy_stubs $(BIN)/mypy ftrt/engine ftrt/runtime/backends/trt.py

# The demo needs no PyTorch: the runtime restores with ONNX Runtime on the CPU.
$(VENV)-demo/bin/.installed: setup.py
	$(PYTHON) -m venv $(VENV)-demo
	$(VENV)-demo/bin/pip install -q --upgrade pip
	$(VENV)-demo/bin/pip install -q -e '.[samples]'
	touch $@

demo: $(VENV)-demo/bin/.installed
	mkdir -p $(DEMO)/sample
	$(VENV)-demo/bin/ftrt sample $(DEMO)/sample/retina.png --size 768
	$(VENV)-demo/bin/ftrt degrade $(DEMO)/sample -o $(DEMO)/degraded --seed 0 --kind cataract
	$(VENV)-demo/bin/ftrt restore $(DEMO)/degraded -o $(DEMO)/restored --backend ort --side-by-side --gate
	$(VENV)-demo/bin/ftrt assess $(DEMO)/sample $(DEMO)/degraded $(DEMO)/restored/retina.png
	$(VENV)-demo/bin/ftrt info ftrt/weights/dn-res-s.onnx
	@echo "side by side (degraded | restored): $(DEMO)/restored/retina_compare.png"

clean:
	rm -rf $(VENV) $(VENV)-demo build *.egg-info $(DEMO)
