# Two entry points: `make test` (everything CI runs) and `make stylize` (the CLI).
# Both create the virtualenv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test run manage token stylize bench bench-gpu load scale clean

$(STAMP): requirements.txt requirements-dev.txt docker/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# The browser tests drive Debian's chromium (Playwright's own browser download cannot work offline).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# The web tier's router (scripts/router.py): nginx in front of the two groups of web processes.
# Installing the package does not start a server where there is no systemd; where there is, Debian
# starts its default site on port 80, which nothing here uses.
NGINX := /usr/sbin/nginx
$(NGINX):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx

# tests/multimachine share one PostgreSQL database between "machines" (skipped on SQLite): they run
# on this machine's server unless DATABASE_URL names another.
MULTIMACHINE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/multimachine

test: $(STAMP) $(CHROMIUM) $(NGINX)
	$(PY) -m pytest -q --ignore=tests/multimachine
	DATABASE_URL=$${DATABASE_URL:-$(MULTIMACHINE_DATABASE_URL)} $(PY) -m pytest -q tests/multimachine
	$(PY) bench/bench_cpu.py --smoke
	$(PY) bench/look.py --smoke
	$(PY) bench/look_sweep.py bench/sweeps/defaults.json --smoke --json bench/out/look_sweep_smoke.json
	$(PY) bench/gpu_check.py --tiny --json bench/out/gpu_check_tiny.json
	$(PY) bench/load_test.py --smoke
	$(PY) bench/asgi_handler.py --smoke

# 1000 event-stream watchers + 200 API pollers + 20 submitters for 60 s against the web server on
# this machine (README, Reliability).
load: $(STAMP) $(NGINX)
	$(PY) bench/load_test.py

# Jobs per minute with 1, 2 and 3 workers, files in an S3 bucket (README, "Several machines").
scale: $(STAMP)
	$(PY) bench/scale_workers.py --bucket

# The whole service on this machine: migrate, a first admin, a broker, a worker, the web tier
# (nginx and two groups of web processes); prints the URL, Ctrl-C stops it all (scripts/run_local.py
# says how).
run: $(STAMP) $(NGINX)
	$(PY) scripts/run_local.py

# manage.py with the settings and data of `make run`: make manage ARGS="changepassword admin"
manage: $(STAMP)
	@$(PY) scripts/run_local.py manage $(ARGS)

# A new REST API token for a person of `make run` (hashed when stored: each call makes a new one): TOKEN=$$(make -s token NAME=admin)
token: $(STAMP)
	@test -n "$(NAME)" || { echo 'usage: make token NAME=<username>' >&2; exit 2; }
	@$(PY) scripts/run_local.py manage api_token $(NAME)

# make stylize ARGS="content.jpg style.jpg -o out.png --preset fast"
stylize: $(STAMP)
	$(PY) -m stylize $(ARGS)

bench: $(STAMP)
	$(PY) bench/bench_cpu.py

bench-gpu: $(STAMP)
	$(PY) bench/gpu_check.py

clean:
	rm -rf $(VENV) bench/out .pytest_cache
