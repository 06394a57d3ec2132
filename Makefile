# Long-Context Models, hands-on. Every target installs what it needs into .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# No GPU here -> pin the CPU build of torch through a constraints file (never in pyproject).
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
CONSTRAINTS := $(if $(HAS_GPU),,-c constraints-cpu.txt)

.PHONY: help install run times test test-unit test-notebooks test-browser lab student nbgrader book bench reproduce clean

help:
	@echo "make run      execute every notebook (full profile), regenerate figures/"
	@echo "make test     unit tests + nbval over every notebook (reduced profile) + browser test"
	@echo "make times    time the reduced profile too, then write each notebook's 'Time needed' from both runs"
	@echo "make lab      open JupyterLab on notebooks/"
	@echo "make student  write a student copy (no outputs, no solutions) to build/student/"
	@echo "make nbgrader write an nbgrader course source (answer cells, locked tests, points) to build/nbgrader/"
	@echo "make book     the notebooks and solutions as a static HTML book (committed outputs, nothing run) in build/book/html/"
	@echo "make test-unit / test-notebooks / test-browser   one part of make test"
	@echo "make bench    run the benchmarks (print measured ratios)"
	@echo "make reproduce  retrain one shipped model per notebook (03b, 04, 05) and compare with the weights"

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[dev,hf,teach,book]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) tools/run_notebooks.py $(or $(NB),notebooks)

times: install
	$(PY) tools/run_notebooks.py --fast notebooks/*.ipynb
	$(PY) tools/notebook_times.py --write

test: install
	sh tools/ensure_browser.sh
	CI=$${CI:-1} $(PY) -m pytest -q -p no:cacheprovider tests notebooks \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval.cfg

test-unit: install
	CI=$${CI:-1} $(PY) -m pytest -q -p no:cacheprovider tests -m "not browser"

test-notebooks: install
	CI=$${CI:-1} $(PY) -m pytest -q -p no:cacheprovider notebooks \
	  --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval.cfg

test-browser: install
	sh tools/ensure_browser.sh
	CI=$${CI:-1} $(PY) -m pytest -q -p no:cacheprovider tests/test_browser.py -s

lab: install
	$(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

student: install
	$(PY) tools/student_copy.py notebooks build/student

nbgrader: install
	$(PY) tools/nbgrader_course.py notebooks build/nbgrader

book: install
	$(PY) tools/build_book.py --notebooks notebooks --out build/book/html

reproduce: install
	$(PY) tools/reproduce.py

bench: install
	$(PY) benchmarks/rope.py
	$(PY) benchmarks/dilated.py

clean:
	rm -rf $(VENV) build .pytest_cache
