# qlab: two commands for everything.
#   make lab    set up .venv (pinned) and open JupyterLab on the student copies of the lessons
#   make test   set up .venv if needed and run every test: unit tests, nbval on every notebook,
#               then nbval again on another CPU's kernels and the other thread count
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.qlab-installed
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# The portability pass: torch's generic kernels instead of AVX2/AVX-512 ones (what an older
# or different student CPU runs) and the other torch thread count (qlab.notebook.lesson_threads).
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 QLAB_OTHER_THREADS=1

.PHONY: setup student lab present present-notebook screenshots test test-unit test-notebooks test-notebooks-other-cpu lesson execute-notebooks benchmarks benchmarks-long clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml jupyter/overrides.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# LAB_ARGS: extra JupyterLab options (tests pass --no-browser, a port and a token).
# Running as root (containers) needs --allow-root; it is added only then.
# OFFLINE: no news feed and no update check, so the lab never reaches for the network.
LAB_ARGS ?=
LAB_DIR ?=
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root)
OFFLINE := --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
# The lab's root is the repository (lessons link ../docs/...); it opens on lessons/.
# LAB_DIR (empty by default): serve that folder as the root instead.
lab: setup student
	$(VENV)/bin/jupyter lab $(ROOT_ARG) $(OFFLINE) --LabApp.default_url=/lab/tree/lessons $(LAB_ARGS) $(LAB_DIR)

# Student copies in lessons/ (solutions stripped, nbgrader's rule: qlab/student.py), one for
# every lesson that has none yet; a student's own file is never overwritten.
student: setup
	$(PY) -m qlab.student notebooks lessons

# make present N=05: the lesson's dashboards alone, large, without code, served by Voila
# (qlab/presenter.py writes build/present/05_*.ipynb). ZOOM scales the dashboards;
# PRESENT_ARGS: extra Voila options (the browser test passes --no-browser, a port and a token).
ZOOM ?= 1.3
PRESENT_DIR := build/present
PRESENT_ARGS ?=
present: setup
	@test -n "$(N)" || { echo "usage: make present N=05"; exit 2; }
	$(PY) -m qlab.presenter $(wildcard notebooks/$(N)_*.ipynb) --out $(PRESENT_DIR) --zoom $(ZOOM)
	$(MAKE) --no-print-directory present-notebook PRESENT_NB="$(PRESENT_DIR)/$(notdir $(wildcard notebooks/$(N)_*.ipynb))"

present-notebook: setup
	$(VENV)/bin/voila --strip_sources=True --theme=light $(PRESENT_ARGS) $(PRESENT_NB)

# README tour images: real dashboards rendered in JupyterLab + headless Chromium -> docs/img/.
screenshots: setup
	$(PY) tools/screenshots.py

test: setup
	$(PY) -m pytest tests notebooks $(NBVAL) --durations=5
	$(MAKE) --no-print-directory test-notebooks-other-cpu

# Unit tests without the ones marked slow.
test-unit: setup
	$(PY) -m pytest tests -m "not slow"

test-notebooks: setup
	$(PY) -m pytest notebooks $(NBVAL)

# Stored outputs must come out the same on another CPU's kernels and thread count.
test-notebooks-other-cpu: setup
	$(OTHER_CPU) $(PY) -m pytest notebooks $(NBVAL) -p no:cacheprovider

# make lesson N=03  -> nbval on that one lesson only
lesson: setup
	$(PY) -m pytest $(NBVAL) notebooks/$(N)_*.ipynb

# Re-execute notebooks in place with outputs stored (no timing metadata, no widget state).
# make execute-notebooks            -> all lessons;  make execute-notebooks NB=notebooks/01_*.ipynb
NB ?= notebooks/*.ipynb
execute-notebooks: setup
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.store_widget_state=False \
	  --ExecutePreprocessor.timeout=600 $(NB)

benchmarks: setup
	$(PY) benchmarks/ptq_accuracy.py
	$(PY) benchmarks/integer_accuracy.py
	$(PY) benchmarks/dashboard_latency.py

# The long ones (tens of minutes; run them alone on a quiet machine): QAT fine-tuning, int8 speed.
benchmarks-long: setup
	$(PY) benchmarks/qat_accuracy.py
	$(PY) benchmarks/int8_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
