-- Benchmark: deident.pseudonymize(email) against what a user would otherwise write:
-- pgcrypto's encode(hmac(email, key, 'sha256'), 'hex') and md5(email).
-- Two tables of 1,000,000 generated e-mails each: long ones (person.N.<md5>@example-M.com,
-- 50-60 bytes) and short ones (employeeN@contoso.com, 20-27 bytes). Default settings (jit,
-- work_mem); serial plans, since the per-call cost is what is compared; runs interleaved
-- (A B C A B C ...) so that drift hits all alike; medians. Run with: make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SET max_parallel_workers_per_gather = 0;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_emails, bench_short;
RESET client_min_messages;
CREATE TABLE bench_emails AS
  SELECT format('person.%s.%s@example-%s.com', g, md5(g::text), g % 97) AS email
    FROM generate_series(1, 1000000) g;
CREATE TABLE bench_short AS
  SELECT format('employee%s@contoso.com', g) AS email FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_emails, bench_short;

CREATE TEMP TABLE bench_queries (name text, sql text, ord int);
INSERT INTO bench_queries
SELECT t.label || q.name, format(q.sql, t.tab), t.base + q.ord
  FROM (VALUES ('long: ', 'bench_emails', 0), ('short: ', 'bench_short', 10)) t(label, tab, base),
       (VALUES ('scan only: count(email)', 'SELECT count(email) FROM %I', 0),
               ('deident.pseudonymize(email)', 'SELECT count(deident.pseudonymize(email)) FROM %I', 1),
               ('encode(hmac(email, key, ''sha256''), ''hex'')',
                'SELECT count(encode(hmac(email, ''0123456789abcdef0123456789abcdef'', ''sha256''), ''hex'')) FROM %I', 2),
               ('md5(email)', 'SELECT count(md5(email)) FROM %I', 3)) q(name, sql, ord);

-- the first (warm-up) pass also loads the key ring and derives the domain key
\ir lib/harness.sql

\pset footer off
\echo
\echo 'pseudonymize benchmark: 1,000,000 e-mails per table, serial, default settings, median of interleaved runs'
SELECT m.query, m.runs, round(m.ms::numeric, 1) AS median_ms,
       round((m.ms - base.ms)::numeric) AS ns_per_call_over_scan  -- ms per 1e6 calls = ns per call
  FROM bench_medians m
  JOIN bench_medians base ON base.ord = m.ord - m.ord % 10
 ORDER BY m.ord;
\echo 'ratios of medians (whole query, scan included; targets: <= 0.30 vs hmac, <= 0.50 vs md5)'
SELECT split_part(d.query, ':', 1) AS emails,
       round((d.ms / h.ms)::numeric, 3) AS vs_pgcrypto_hmac,
       round((d.ms / m.ms)::numeric, 3) AS vs_md5
  FROM bench_medians d
  JOIN bench_medians h ON h.ord = d.ord + 1
  JOIN bench_medians m ON m.ord = d.ord + 2
 WHERE d.ord % 10 = 1 ORDER BY d.ord;
DROP TABLE bench_emails, bench_short;
