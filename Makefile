# The two entry points of the README. Each bootstraps the environment first (fast when done).
.PHONY: demo test test-long bootstrap

PY := .venv/bin/python

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	@.venv/bin/mbnn demo

# Default regression: golden unit/property tests, HDL generation and cocotb runs on Icarus and
# Verilator. Two workers match the two cores of the reference machine.
test: bootstrap
	@$(PY) -m pytest -n 2 -m "not slow" --durations=12

test-long: bootstrap
	@$(PY) -m pytest -n 2 -m slow
