# Two entry points: `make test` (everything CI runs) and `make stylize` (the CLI).
# Both create the virtualenv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test stylize bench bench-gpu clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q
	$(PY) bench/bench_cpu.py --smoke

# make stylize ARGS="content.jpg style.jpg -o out.png --preset fast"
stylize: $(STAMP)
	$(PY) -m stylize $(ARGS)

bench: $(STAMP)
	$(PY) bench/bench_cpu.py

bench-gpu: $(STAMP)
	$(PY) bench/bench_gpu.py

clean:
	rm -rf $(VENV) bench/out .pytest_cache
