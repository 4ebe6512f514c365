# Two commands for a fresh machine: `make demo` (a whole simulated night)
# and `make test` (the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test docs bench bench-check clean golden

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[test,docs,docker]"
	touch $(STAMP)

# Reinstall the package itself (not its dependencies) so the run uses this
# tree: again whenever a file of the package changed since the last install.
PACKAGE_FILES := pyproject.toml $(shell find ocd twisted -type f \( -name '*.py' -o -name '*.cfg' \) 2>/dev/null)
INSTALLED := $(VENV)/.ocd-installed

$(INSTALLED): $(STAMP) $(PACKAGE_FILES)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	touch $(INSTALLED)

install: $(INSTALLED)

demo: install
	$(BIN)/ocd simulate_night

# The suite runs in two pytest-xdist workers per core, and one more: many
# tests wait on child processes or a replayed night, and the other workers
# use the cores meanwhile (measured on 2 cores, files on disk: 2 workers
# 110-120 s, 3 workers 86-99 s, 4 workers 80-88 s; on tmpfs, below, run
# alternately at one moment: 4 workers 57.5, 59.0, 52.0 s, 5 workers 54.1,
# 51.3, 48.6 s). TEST_JOBS=0 runs it in this process.
# One OpenBLAS thread per process: numpy's thread pool costs CPU at every start
# of the ~300 child processes and the suite has nothing for it to compute.
# Bytecode is written (PYTHONDONTWRITEBYTECODE is cleared, where a machine sets
# it): each of those processes otherwise compiles every module of this tree
# again, and each worker rewrites every test module's asserts again.
TEST_JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 + 1 )))
# The tests' files (TMPDIR: pytest's tmp_path, the run's cache, the state and
# night-log databases of every child ocd) go to RAM when /dev/shm is a
# writable tmpfs with 2 GB free (a run writes about 100 MB; pytest keeps its
# last three runs, the rest of the last run is removed at the next): on the
# shared disk (5 % iowait) a replayed night's ocd run and its replay were
# seen silent for 10 s while the other workers wrote, which moved the night's
# decisions; every child's SQLite commit waits for an fsync.
# TEST_TMPDIR= (empty) keeps the system's temporary folder.
TEST_TMPDIR ?= $(shell d=/dev/shm; [ -d $$d ] && [ -w $$d ] && [ "$$(df -Pk $$d 2>/dev/null | awk 'NR==2 {print $$4}')" -gt 2000000 ] 2>/dev/null && echo $$d/ocd-test-$$(id -u))
test: install
	$(if $(TEST_TMPDIR),mkdir -p $(TEST_TMPDIR) && rm -rf $(TEST_TMPDIR)/ocd-test-* && TMPDIR=$(TEST_TMPDIR)) PYTHONDONTWRITEBYTECODE= OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadgroup --no-loadscope-reorder -ra $(PYTEST_ARGS)

# Regenerate tests/golden_night.txt on purpose (a change of behaviour); review its diff.
golden: install
	OCD_REGENERATE_GOLDEN=1 $(BIN)/python -m pytest -q -rs tests/test_golden_night.py

docs: install
	$(BIN)/sphinx-build -W -q -b html docs docs/_build/html

# bench/yield.py needs OR-Tools (the bench extra); it says so and skips without it.
bench: install
	$(BIN)/pip install --quiet ".[bench]" || echo "OR-Tools could not be installed: bench/yield.py will skip"
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

# Every bench once with small sizes (about a minute), so that none stops
# running unnoticed (bench/decision.py did: its events were all refused once
# [dates] max_time_offset came). Exit codes only: figures at these sizes are
# not the targets'. .ci/run runs it after the tests.
BENCH_QUICK := \
	"child_output.py -n 20000" "decision.py --n 5" "deep_payload.py" \
	"ingest.py -n 2000 -r 1 --blackbox-count 5000" "obsnum.py --n 20" \
	"replay.py --quick" "sample_night.py" \
	"scheduler.py --shots 200 --decisions 10 --baseline-calls 1 --plans 1" \
	"stall.py -n 5000" "start.py --rounds 1" "suite.py --jobs 0 tests/test_core_purity.py" \
	"yield.py --nights 1 --solve-seconds 2"
bench-check: install
	$(BIN)/pip install --quiet ".[bench]" || echo "OR-Tools could not be installed: bench/yield.py will skip"
	@for b in $(BENCH_QUICK); do echo "bench/$$b"; $(BIN)/python bench/$$b > /dev/null || { echo "bench/$$b failed"; exit 1; }; done

clean:
	rm -rf $(VENV) build *.egg-info docs/_build .pytest_cache
