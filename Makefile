# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# daphne closes frames over 64 KB with 1009 (see CHAT_MAX_FRAME_BYTES).
DAPHNE_FLAGS := --websocket-max-message-size 65536 --websocket-max-frame-size 65536
# TLS_CERT and TLS_KEY (PEM files, from the environment) add an HTTPS/WSS endpoint on TLS_PORT.
TLS_PORT ?= 8443
TLS_FLAGS := $(if $(and $(TLS_CERT),$(TLS_KEY)),-e ssl:$(TLS_PORT):privateKey=$(TLS_KEY):certKey=$(TLS_CERT):interface=$(HOST))

.PHONY: run test install lint serve worker beat clean fuzz bench bench-quick bench-load bench-load-quick screenshots

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# chart.js (served as a static file) and Azurite (the Azure Blob emulator the archive tests
# start) come from package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo ""
	@echo "  Visitor widget:  http://localhost:$(PORT)/widget/demo/   (a demo shop page embedding the widget)"
	@echo "  Visitor page:    http://$(HOST):$(PORT)/chat/   (the plain page, no widget)"
	@echo "  Agent workspace: http://$(HOST):$(PORT)/agent/   (alice or bob / coachline-demo)"
	@echo "  Back office:     http://$(HOST):$(PORT)/admin/   (supervisor, compliance or admin / coachline-demo)"
	@echo "  Second factor:   one of that user's backup codes printed above"
	@echo ""
	$(VENV)/bin/daphne $(DAPHNE_FLAGS) -b $(HOST) -p $(PORT) config.asgi:application

serve: install
	$(VENV)/bin/daphne $(DAPHNE_FLAGS) $(TLS_FLAGS) -b $(HOST) -p $(PORT) config.asgi:application

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO

test: install
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The README's screenshots (docs/screenshots/*.png), from a scratch demo database and Debian's chromium.
screenshots: install
	$(PY) docs/screenshots/make_screenshots.py

# The long form of the protocol fuzzing (make test runs 2,000 frames).
fuzz: install
	COACHLINE_FUZZ_FRAMES=$${COACHLINE_FUZZ_FRAMES:-10000} $(VENV)/bin/pytest -q -s tests/chat/test_fuzz_frames.py

# Every benchmark of docs/benchmarks.md in one command (bench/run_all.py): masking, audit,
# reporting and the WebSocket load; each rewrites its own block of that page.
bench: install
	$(PY) bench/run_all.py

bench-quick: install
	$(PY) bench/run_all.py --quick

# WebSocket load benchmark (docs/benchmarks.md): starts its own redis-server and daphne processes
# and uses its own PostgreSQL databases (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432).
bench-load: install
	$(PY) bench/load.py $(BENCH_ARGS)

bench-load-quick: install
	$(PY) bench/load.py --quick $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) data staticfiles
