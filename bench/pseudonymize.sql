-- Benchmark: deident.pseudonymize(email) against what a user would otherwise write:
-- pgcrypto's encode(hmac(email, key, 'sha256'), 'hex') and md5(email).
-- One session, 1,000,000 generated e-mails, serial plans (the per-call cost is what is
-- compared), runs interleaved (A B C A B C ...) so that drift hits all alike; medians.
-- Run with: make bench   (scripts/bench.sh)
\set ON_ERROR_STOP 1
\set runs 7
CREATE EXTENSION IF NOT EXISTS pg_deident;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SET max_parallel_workers_per_gather = 0;
SET jit = off;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_emails;
RESET client_min_messages;
CREATE TABLE bench_emails AS
  SELECT format('person.%s.%s@example-%s.com', g, md5(g::text), g % 97) AS email
    FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_emails;

CREATE TEMP TABLE bench_queries (name text, sql text, ord int);
INSERT INTO bench_queries VALUES
  ('scan only: count(email)', 'SELECT count(email) FROM bench_emails', 0),
  ('deident.pseudonymize(email)', 'SELECT count(deident.pseudonymize(email)) FROM bench_emails', 1),
  ('encode(hmac(email, key, ''sha256''), ''hex'')',
   'SELECT count(encode(hmac(email, ''0123456789abcdef0123456789abcdef'', ''sha256''), ''hex'')) FROM bench_emails', 2),
  ('md5(email)', 'SELECT count(md5(email)) FROM bench_emails', 3);

-- the first (warm-up) pass also loads the key ring and derives the domain key
\ir lib/harness.sql

\pset footer off
\echo
\echo 'pseudonymize benchmark: 1,000,000 e-mails, serial, median of interleaved runs'
SELECT m.query, m.runs, round(m.ms::numeric, 1) AS median_ms,
       round((m.ms - base.ms)::numeric) AS ns_per_call_over_scan  -- ms per 1e6 calls = ns per call
  FROM bench_medians m, (SELECT ms FROM bench_medians WHERE ord = 0) base
 ORDER BY m.ord;
\echo 'ratios of medians (whole query, scan included; targets: <= 0.30 vs hmac, <= 0.55 vs md5)'
WITH med AS (SELECT * FROM bench_medians)
SELECT round(((SELECT ms FROM med WHERE query = 'deident.pseudonymize(email)')
             / (SELECT ms FROM med WHERE query LIKE 'encode(hmac%'))::numeric, 3) AS vs_pgcrypto_hmac,
       round(((SELECT ms FROM med WHERE query = 'deident.pseudonymize(email)')
             / (SELECT ms FROM med WHERE query = 'md5(email)'))::numeric, 3) AS vs_md5;
DROP TABLE bench_emails;
