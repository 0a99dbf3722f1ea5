# Two entry points: `make demo` (set up, run the main job) and `make test` (set up, run every test).
# Set-up is idempotent: a venv in .venv, CPU torch first (override TORCH_SPEC / TORCH_INDEX for a GPU
# build), then the package; the Fashion-MNIST Debian package is installed when apt is usable.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
APT_PACKAGES ?= dataset-fashion-mnist
TEST_APT_PACKAGES ?= dataset-fashion-mnist chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: demo test setup test-setup system-packages

demo: setup system-packages
	$(VENV)/bin/spikescope analyze --layers all --membrane --attribution --out reports/demo

test: test-setup
	$(MAKE) --no-print-directory system-packages APT_PACKAGES="$(TEST_APT_PACKAGES)"
	$(PY) -m pytest -q

setup: $(VENV)/.installed

test-setup: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PIP) install -e .
	touch $@

# SpikingJelly 2.0, snnTorch and sinabs declare heavy dependencies (CUDA torch via torchvision, samna) they do
# not need here; sinabs imports pbr, nir, nirtorch and h5py (nir 1.0.4 is the newest sinabs 3.1.3 accepts).
# NeuroBench 2.3.0 (tests/test_neurobench.py runs its harness) needs only torch, snntorch, tqdm and numpy for its
# models, benchmarks and metrics; it also declares numba, llvmlite, tonic and torchaudio (a torch of its own), which
# only its data sets and pre-processors import.
INTEROP_PACKAGES ?= spikingjelly==2.0.0 snntorch==1.0.0 sinabs==3.1.3 nir==1.0.4 nirtorch==2.6 pbr==7.1.3 h5py==3.16.0 \
	neurobench==2.3.0
$(VENV)/.installed-test: $(VENV)/.installed Makefile
	$(PIP) install -e ".[test]"
	$(PIP) install --no-deps $(INTEROP_PACKAGES)
	touch $@

# Debian packages the demo and the tests use; skipped (with a note) where apt cannot run.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && $(SUDO) true 2>/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    ($(SUDO) apt-get install -y -q $$missing >/dev/null 2>&1 || \
	     ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $$missing >/dev/null)) || \
	    echo "note: could not install $$missing; tests that need them are skipped"; \
	  else echo "note: cannot run apt-get; $$missing not installed (the bundled sample is used instead)"; fi; \
	fi
