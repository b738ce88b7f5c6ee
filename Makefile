# OmniTool: `make run` serves the portal with demo data on SQLite; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test test-postgresql bench demo clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(INSTALLED)

run: $(INSTALLED)
	$(PY) manage.py migrate --verbosity 1
	$(PY) manage.py load_demo
	@echo "Portal: http://127.0.0.1:8000/  Admin: http://127.0.0.1:8000/admin/ (admin / admin)"
	$(PY) manage.py runserver 127.0.0.1:8000

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles var .pytest_cache .hypothesis

# Access import/export at 1M grants on PostgreSQL (BENCH_DATABASE_URL, default a local server).
bench: $(INSTALLED)
	$(PY) benchmarks/access_bench.py

# The dev → staging → production journey on three local databases.
demo: $(INSTALLED)
	$(PY) scripts/promotion_demo.py
