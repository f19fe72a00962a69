# make demo : set everything up and run the live demo (browser view at http://127.0.0.1:8080/)
# make test : set everything up and run the tests (what CI runs): ruff, mypy, every test
# make check: ruff, mypy and the unit tests only (in-process, fast): the check to run while editing
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The CPU build of PyTorch; on a CUDA box use e.g. `make setup TORCH=torch`
TORCH ?= torch==2.13.0

.PHONY: setup demo test check lint masks clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,torch]"
	touch $@

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -m unit

masks: setup
	$(PY) -m tools.make_masks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
