--
-- pseudonym: SPEC "Pseudonymization" test vectors and arguments.
-- The key ring (deident/regress.keys) holds k1 = bytes 0x00..0x1f (SPEC's test key, first, so
-- active) and k2 = bytes 0x20..0x3f.
--
-- OK: the key in use is SPEC's
SELECT deident.key_fingerprint();

-- 1. SPEC's vectors
SELECT v.value, v.domain, v.length, deident.pseudonymize(v.value, v.domain, v.length) AS pseudonym
  FROM (VALUES ('alice@contoso.com', '', 22),
               ('alice@contoso.com', 'hr', 22),
               ('alice@contoso.com', '', 15),
               ('', '', 22),
               ('José.Müller@exämple.org', '', 22)) AS v(value, domain, length);
SELECT deident.pseudonymize_uuid('alice@contoso.com');
SELECT deident.pseudonymize_bigint('alice@contoso.com');
-- pseudonymize_int (FF1; the same numbers from tests/vectors/ff1_reference.py)
SELECT v.value, v.domain, deident.pseudonymize_int(v.value, v.domain) AS pseudonym
  FROM (VALUES (0, ''), (1001, ''), (1001, 'hr'), (-2147483648, '')) AS v(value, domain);

-- 2. defaults and named arguments
SELECT deident.pseudonymize('alice@contoso.com');
SELECT deident.pseudonymize('alice@contoso.com', length => 15);
SELECT deident.pseudonymize('alice@contoso.com', domain => 'hr', key_id => 'k1');
SELECT deident.pseudonymize_uuid('alice@contoso.com', 'hr'),
       deident.pseudonymize_bigint('alice@contoso.com', 'hr');
SELECT deident.pseudonymize_int(1001, key_id => 'k1') AS int_k1,
       deident.pseudonymize_int(1001, domain => 'hr', key_id => '') AS int_hr;

-- 3. bytea: the bytes as they are; text is its UTF-8 bytes
SELECT deident.pseudonymize('alice@contoso.com'::bytea);
SELECT deident.pseudonymize(convert_to('José.Müller@exämple.org', 'UTF8'));
SELECT deident.pseudonymize('\x00ff80'::bytea, 'raw', 43);
SELECT deident.pseudonymize(''::bytea);

-- 4. lengths 8 and 43 are the bounds; a shorter pseudonym is the tail of a longer one
SELECT deident.pseudonymize('alice@contoso.com', '', 8) AS len8,
       deident.pseudonymize('alice@contoso.com', '', 43) AS len43;
SELECT length(deident.pseudonymize('x', '', n)) = n AS exact, count(*)
  FROM generate_series(8, 43) n GROUP BY 1;
-- fail (length out of range)
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com', '', 7)$$);
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com', '', 44)$$);
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com'::bytea, '', -1)$$);

-- 5. NULL in, NULL out, for every argument (STRICT)
SELECT deident.pseudonymize(NULL::text) IS NULL AS value_null,
       deident.pseudonymize('a', NULL) IS NULL AS domain_null,
       deident.pseudonymize('a', '', NULL) IS NULL AS length_null,
       deident.pseudonymize('a', '', 22, NULL) IS NULL AS key_null,
       deident.pseudonymize(NULL::bytea) IS NULL AS bytea_null,
       deident.pseudonymize_uuid(NULL) IS NULL AS uuid_null,
       deident.pseudonymize_bigint(NULL) IS NULL AS bigint_null,
       deident.key_fingerprint(NULL) IS NULL AS fingerprint_null;
SELECT deident.pseudonymize_int(NULL) IS NULL AS int_null,
       deident.pseudonymize_int(1, NULL) IS NULL AS int_domain_null,
       deident.pseudonymize_int(1, '', NULL) IS NULL AS int_key_null;

-- 6. domains separate: the same value in two domains gives unrelated pseudonyms
SELECT d AS domain, deident.pseudonymize('alice@contoso.com', d) AS pseudonym,
       deident.pseudonymize_int(1001, d) AS int_pseudonym
  FROM unnest(ARRAY['', 'hr', 'HR', 'hr ', 'finance']) d ORDER BY d;

-- 7. key ids: k1 is the active key, k2 gives other pseudonyms
SELECT k AS key_id, deident.key_fingerprint(k) AS fingerprint,
       deident.pseudonymize('alice@contoso.com', '', 22, k) AS pseudonym,
       deident.pseudonymize_uuid('alice@contoso.com', '', k) AS uuid,
       deident.pseudonymize_bigint('alice@contoso.com', '', k) AS bigint,
       deident.pseudonymize_int(1001, '', k) AS int
  FROM unnest(ARRAY['', 'k1', 'k2']) k;
-- fail (no such key)
SELECT regress_error($$SELECT deident.pseudonymize_int(1001, '', 'k3')$$);
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com', '', 22, 'k3')$$);
SELECT regress_error($$SELECT deident.pseudonymize_uuid('alice@contoso.com', '', 'K1')$$);
SELECT regress_error($$SELECT deident.key_fingerprint('nope')$$);

-- 8. a table: same value, same pseudonym; distinct values stay distinct; the bigint is never
-- negative and the uuid is version 8, variant RFC 9562
CREATE TABLE regress_people AS
  SELECT format('person%s@contoso.com', g % 5000) AS email FROM generate_series(1, 20000) g;
SELECT count(DISTINCT email) AS emails,
       count(DISTINCT deident.pseudonymize(email)) AS pseudonyms,
       count(DISTINCT deident.pseudonymize(email, length => 8)) AS short_pseudonyms,
       count(DISTINCT deident.pseudonymize_uuid(email)) AS uuids,
       min(deident.pseudonymize_bigint(email)) >= 0 AS bigint_non_negative,
       bool_and(substr(deident.pseudonymize_uuid(email)::text, 15, 1) = '8') AS uuid_v8,
       bool_and(substr(deident.pseudonymize_uuid(email)::text, 20, 1) IN ('8','9','a','b')) AS variant,
       bool_and(deident.pseudonymize(email) ~ '^[0-9A-Za-z]{22}$') AS alphabet
  FROM regress_people;
-- a parallel plan gives the same pseudonyms as the serial one
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF, VERBOSE)
  CREATE TABLE regress_parallel AS SELECT email, deident.pseudonymize(email) AS p FROM regress_people;
CREATE TABLE regress_parallel AS SELECT email, deident.pseudonymize(email) AS p FROM regress_people;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
SELECT count(*) AS mismatches FROM regress_parallel WHERE p <> deident.pseudonymize(email);
DROP TABLE regress_people, regress_parallel;

-- 9. pseudonymize_int is a permutation of the integer range: 200 002 values, the ends of the
-- range among them, give as many distinct pseudonyms, in a serial and a parallel plan alike;
-- the key id and the domain may change from row to row
CREATE TABLE regress_ints AS
  SELECT g AS v FROM generate_series(-100000, 99999) g
  UNION ALL VALUES (-2147483648), (2147483647);
WITH p AS MATERIALIZED (
  SELECT v, deident.pseudonymize_int(v) AS p, deident.pseudonymize_int(v, 'hr') AS p_hr
    FROM regress_ints)
SELECT count(*) AS ints, count(DISTINCT p) AS pseudonyms, count(DISTINCT p_hr) AS hr_pseudonyms,
       count(*) FILTER (WHERE p = p_hr) AS same_in_hr, count(*) FILTER (WHERE p = v) AS fixed_points
  FROM p;
SELECT v, deident.pseudonymize_int(v) AS pseudonym
  FROM regress_ints WHERE v IN (-2147483648, 2147483647) ORDER BY v;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF, VERBOSE)
  CREATE TABLE regress_int_parallel AS SELECT v, deident.pseudonymize_int(v) AS p FROM regress_ints;
CREATE TABLE regress_int_parallel AS SELECT v, deident.pseudonymize_int(v) AS p FROM regress_ints;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
SELECT count(*) AS mismatches FROM regress_int_parallel WHERE p <> deident.pseudonymize_int(v);
-- a call site whose key id and domain change from row to row agrees with constant ones
SELECT d AS domain, k AS key_id, count(*) AS rows,
       count(*) FILTER (WHERE deident.pseudonymize_int(v, d, k) <> CASE
           WHEN d = 'hr' AND k = 'k2' THEN deident.pseudonymize_int(v, 'hr', 'k2')
           WHEN d = 'hr' THEN deident.pseudonymize_int(v, 'hr', 'k1')
           WHEN k = 'k2' THEN deident.pseudonymize_int(v, '', 'k2')
           ELSE deident.pseudonymize_int(v, '', 'k1') END) AS mismatches
  FROM (SELECT v, CASE WHEN v % 2 = 0 THEN 'hr' ELSE '' END AS d,
               CASE WHEN v % 3 = 0 THEN 'k2' ELSE 'k1' END AS k
          FROM regress_ints WHERE v BETWEEN 0 AND 999) t
 GROUP BY 1, 2 ORDER BY 1, 2;
DROP TABLE regress_ints, regress_int_parallel;
