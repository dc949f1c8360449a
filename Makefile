# attestream developer entry points. Every target that runs code first runs the idempotent
# bootstrap (seconds when everything is installed), so a fresh Debian machine needs only `make`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STATE_DIR := .attestream
PACKAGES := attestream streams detectors ledger anchoring forensics
# Only the package directories that exist and hold Python files (mypy rejects empty ones).
MYPY_TARGETS := $(sort $(dir $(wildcard $(addsuffix /*.py,$(PACKAGES)))))

# Test directories that exist (git keeps no empty ones, so a fresh clone may lack one).
TEST_DIRS := $(wildcard tests/unit tests/integration tests/e2e)

.PHONY: setup demo test bench lint clean-state stack-up stack-down

setup:
	@bash deploy/bootstrap.sh

demo: setup
	$(BIN)/attestream demo

test: setup
	$(BIN)/pytest -q $(TEST_DIRS)

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check $(PACKAGES) bench tests
	$(BIN)/mypy --strict $(MYPY_TARGETS)

stack-up: setup
	$(BIN)/attestream stack up --home $(STATE_DIR)

stack-down:
	$(BIN)/attestream stack down --home $(STATE_DIR)

# Stop the stack, then delete its state (ClickHouse data, chain, keys, logs) but keep the
# installed tools under $(STATE_DIR)/tools so the next `make` stays fast.
clean-state:
	-@[ -x $(BIN)/attestream ] && $(BIN)/attestream stack down --home $(STATE_DIR)
	@if [ -d $(STATE_DIR) ]; then \
		find $(STATE_DIR) -mindepth 1 -maxdepth 1 ! -name tools -exec rm -rf {} +; fi
	@echo "removed $(STATE_DIR) state (kept $(STATE_DIR)/tools)"
