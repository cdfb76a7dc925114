# pg_deident: the two commands of the README, and their parts.
#   make demo   builds, starts a throwaway cluster with the extension, prints the reports
#   make test   fmt, clippy, unit and pgrx tests, pg_regress tests
# Each installs what it needs first (scripts/deps.sh) and is safe to run again.
# `make` and `make install` build and install the release library (what PGXN's client runs).
SHELL := /bin/bash

.PHONY: all install deps demo demo-stop test lint pgtest regress bench bench-citus stress package citus-test
all: deps
	cargo build --release

install: deps
	@scripts/install.sh --release

deps:
	@scripts/deps.sh

demo: deps
	@scripts/demo.sh

demo-stop:
	@scripts/demo.sh stop

test: deps
	@scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --features pg_test -- -D warnings

# Rust unit tests (#[test]) and in-server tests (#[pg_test]); runs the server as `postgres`.
pgtest:
	@scripts/pgtest.sh

# pg_regress against a throwaway cluster, with the extension installed from this tree.
regress:
	@scripts/install.sh
	@scripts/regress.sh

bench: deps
	@scripts/bench.sh

# The k-aggregates on a Citus coordinator and two workers against sum and count(DISTINCT)
# (bench/citus.sql); needs Citus (scripts/citus.sh). Not part of `make bench`.
bench-citus: deps
	@scripts/bench-citus.sh

# A Debian package for the system PostgreSQL and PGXN's META.json, in target/package/
# (scripts/package.sh); `make test` builds it, installs it, uses it and removes it.
package: deps
	@scripts/package.sh

# pg_deident on a Citus coordinator and two workers (tests/citus.sh): Citus installed, or built
# from ../shared/vendor/citus/ (CITUS_TARBALL); `make test` runs it too, or says it skipped it.
citus-test: deps
	@scripts/install.sh
	@tests/citus.sh

# Concurrency, key rotation and sqlsmith against a throwaway cluster (docs/stress.md); about
# 5 minutes after the release build. Not part of `make test`.
stress: deps
	@scripts/stress.sh
