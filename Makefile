# The two commands of the README:
#   make lab    create the environment (first time) and open the course in JupyterLab
#   make test   create the environment (first time) and run every test: unit tests,
#               nbval over all notebooks in quick mode, and the website built in quick mode
# The website: make site (full mode, what a student sees), make site-quick (quick mode, for CI).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# JupyterLab refuses to run as root unless told to (containers, CI machines)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup site-setup lab test unit notebooks site site-quick site-tests site-clean student lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -e .
	touch $@

setup: $(VENV)/.installed

# The site's own packages (Sphinx, myst-nb, the theme, MathJax), kept out of the course environment's
# requirements so that make lab stays as light as it was.
$(VENV)/.site-installed: requirements-site.txt $(VENV)/.installed
	$(PY) -m pip install -r requirements-site.txt
	touch $@

site-setup: $(VENV)/.site-installed

# Full and quick mode build into separate folders, each with its own execution cache: the code of a
# notebook is the same in both modes, its outputs are not.
SITE_MODE = $(if $(filter-out 0,$(FLOWLIB_QUICK)),quick,full)
SITE_OUT = site/_build/$(SITE_MODE)
SPHINXOPTS ?=

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

# nbval and the quick site build both execute every notebook. They run one after the other: run side
# by side, two processes starting Jupyter kernels at once can race for the same TCP ports, and then a
# notebook waits forever for a reply that went to the other kernel (seen twice on this machine).
test: setup site-setup
	FLOWLIB_QUICK=1 $(PY) -m pytest tests notebooks -m "not site" \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15
	FLOWLIB_QUICK=1 $(MAKE) --no-print-directory site
	FLOWLIB_QUICK=1 $(PY) -m pytest tests/test_site.py -m site --durations=5

unit: setup
	FLOWLIB_QUICK=1 $(PY) -m pytest tests

notebooks: setup
	FLOWLIB_QUICK=1 $(PY) -m pytest notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600 --durations=15

# Sphinx builds the site into $(SITE_OUT)/html, executing the notebooks through jupyter-cache: a
# rebuild runs only the notebooks whose code changed. An error in a notebook fails the build.
site: site-setup
	$(VENV)/bin/sphinx-build -b html -W --keep-going -d $(SITE_OUT)/doctrees site $(SITE_OUT)/html $(SPHINXOPTS)
	@echo "open $(SITE_OUT)/html/index.html, or: $(PY) -m http.server -d $(SITE_OUT)/html"

site-quick:
	FLOWLIB_QUICK=1 $(MAKE) --no-print-directory site

# The cache knows a notebook by its code, not by the flowlib it imports: after a change in flowlib
# that changes what the notebooks show, start again from nothing.
site-clean:
	rm -rf site/_build site/notebooks

# the real-browser tests of the quick site (build it first: make site-quick)
site-tests: site-setup
	FLOWLIB_QUICK=1 $(PY) -m pytest tests/test_site.py -v

# a copy of the notebooks without their reference solutions, for students (refuses to overwrite)
student: setup
	$(PY) -m flowlib.exercises.strip student

lint: setup
	$(PY) -m ruff check flowlib tests notebooks

clean:
	rm -rf $(VENV) .pytest_cache site/_build
