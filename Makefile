# Two commands for a new user: `make demo` and `make test`. Both create the
# environment if needed and are safe to run again.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.workbench-installed
KERNEL := $(VENV)/share/jupyter/kernels/workbench/kernel.json

.PHONY: demo test venv kernel lab clean benchmark

venv: $(STAMP) $(KERNEL)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

# The kernel lives inside .venv (--sys-prefix), so Papermill and JupyterLab
# started from .venv find it and nothing outside the project is touched.
$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name workbench --display-name "Python (workbench)" >/dev/null
	@touch $(KERNEL)

kernel: $(KERNEL)

demo: venv
	$(BIN)/workbench run params/demo.yaml

test: venv
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# JupyterLab on copies in lab/ (ignored by git): autosave never changes the shipped notebooks,
# which are what `workbench run` executes. Copies already there are kept (they hold your work).
lab: venv
	mkdir -p lab && cp -n notebooks/*.ipynb lab/
	$(BIN)/jupyter lab lab/

benchmark: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) output .pytest_cache
