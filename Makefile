# The two commands of the README:
#   make lab    create the environment (first time) and open the course in JupyterLab
#   make test   create the environment (first time) and run every test: unit tests and
#               nbval over all notebooks in quick mode
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# JupyterLab refuses to run as root unless told to (containers, CI machines)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test unit notebooks student lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -e .
	touch $@

setup: $(VENV)/.installed

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

test: setup
	FLOWLIB_QUICK=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15

unit: setup
	FLOWLIB_QUICK=1 $(PY) -m pytest tests

notebooks: setup
	FLOWLIB_QUICK=1 $(PY) -m pytest notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15

# a copy of the notebooks without their reference solutions, for students (refuses to overwrite)
student: setup
	$(PY) -m flowlib.exercises.strip student

lint: setup
	$(PY) -m ruff check flowlib tests notebooks

clean:
	rm -rf $(VENV) .pytest_cache
