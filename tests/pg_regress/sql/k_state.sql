--
-- k_state: the state type of the k-aggregates. A state is an expanded object in memory and
-- sealed bytes whenever it leaves memory (AES-256-GCM under a key derived from the key ring
-- for each batch of states: docs/sealed-states.md); its text is base64 of them. The input function accepts only
-- states sealed by a key of this ring, intact. Partial states can therefore be handed around
-- (Citus ships them as text), never read or forged; the k check happens in the final
-- functions only, whatever states are combined.
--

-- Data: three groups of 20 persons, one of 2 persons.
CREATE TABLE regress_ks AS
  SELECT g % 3 AS grp, format('p%s', g % 20) AS person, g AS v FROM generate_series(1, 60) g
  UNION ALL SELECT 9, 'q1', 1000 UNION ALL SELECT 9, 'q2', 2000;
CREATE ROLE regress_ks_analyst;
GRANT SELECT ON regress_ks TO regress_ks_analyst;
CREATE SCHEMA regress_ks_own AUTHORIZATION regress_ks_analyst;

-- 1. what an analyst can do with our support functions: an aggregate without a final
-- function returns the state itself, sealed; another combines states and answers as k_sum
-- OK
SET ROLE regress_ks_analyst;
CREATE AGGREGATE regress_ks_own.partial(integer, text) (SFUNC = deident._k_trans,
  STYPE = deident.k_state);
CREATE AGGREGATE regress_ks_own.combined_sum(deident.k_state) (SFUNC = deident._k_combine,
  STYPE = deident.k_state, FINALFUNC = deident._k_sum_int8_final, FINALFUNC_MODIFY = READ_WRITE);
CREATE TABLE regress_ks_own.states AS
  SELECT grp, regress_ks_own.partial(v, person) AS s FROM regress_ks GROUP BY grp;
-- the text is base64 of: "pgdS", format 2, kind 1 (k-aggregate), the key id "k1" (the active
-- key), the batch's salt, a nonce, the ciphertext, the tag: 4 + 3 + 2 + 16 + 12 + 16 bytes
-- around the state's encoding, framed. A group below k is padded as if it held k persons, to
-- a power of two of at least 64 + 8k bytes (here 128): the group of 2 persons. A group that
-- reached k (the three of 20) remembers no persons and is only framed to AES's block (48
-- bytes): its length says it reached k, as its sum, which k_sum releases, says too
SELECT grp, left(s::text, 12) AS header, length(decode(s::text, 'base64')) AS bytes
  FROM regress_ks_own.states ORDER BY grp;
-- nor does the length of any state tell how many persons a group below k has, or how large
-- a sum is within its size class
CREATE AGGREGATE regress_ks_own.partial_distinct(text) (SFUNC = deident._k_distinct_trans,
  STYPE = deident.k_state);
CREATE AGGREGATE regress_ks_own.partial_numeric(numeric, text) (SFUNC = deident._k_trans,
  STYPE = deident.k_state);
SELECT n AS persons, length(decode(regress_ks_own.partial_distinct(p)::text, 'base64')) AS bytes
  FROM generate_series(1, 6) n, LATERAL generate_series(1, n) g, LATERAL (SELECT 'p' || g) x(p)
 GROUP BY n ORDER BY n;
SELECT x AS sum, length(decode(regress_ks_own.partial_numeric(x, 'alice')::text, 'base64')) AS bytes
  FROM (VALUES (1::numeric), (1e20), (1e40), (-1e40)) v(x) GROUP BY x ORDER BY x;
-- nor whether a group's sum mixes signs (its positive and negative parts are kept apart): two
-- groups below k with the same sum, one of them with a negative value
SELECT grp, sum(v), length(decode(regress_ks_own.partial_numeric(v, person)::text, 'base64')) AS bytes
  FROM (VALUES ('A', 'a', 1500000000.5::numeric(38, 18)), ('A', 'b', 1500000000.5),
               ('B', 'c', 4500000001.0), ('B', 'd', -1500000000.0)) t(grp, person, v)
 GROUP BY grp ORDER BY grp;
-- also when a sum's digits alone fill the smallest size (scale 140): the persons below k
-- still do not show; a larger size class is the sum's, the same for 1 to 4 persons (and at
-- k persons and more: a numeric sum's full state is padded as one below k, see below)
SELECT n AS persons,
       length(decode(regress_ks_own.partial_numeric(round(g * 1.25, 140), 'p' || g)::text, 'base64')) AS bytes
  FROM generate_series(1, 6) n, generate_series(1, n) g GROUP BY n ORDER BY n;
-- and k_sum's own states of 1 to 6 persons: one length below k, a shorter one from k on
SELECT n AS persons, length(decode(regress_ks_own.partial(g, 'p' || g)::text, 'base64')) AS bytes
  FROM generate_series(1, 6) n, generate_series(1, n) g GROUP BY n ORDER BY n;
-- the same state sealed twice: under other nonces, so nothing shows that it is the same
SELECT a <> b AS differ, length(a) = length(b) AS same_length
  FROM (SELECT (SELECT regress_ks_own.partial(v, person)::text FROM regress_ks WHERE grp = 0) AS a,
               (SELECT regress_ks_own.partial(v, person)::text FROM regress_ks WHERE grp = 0) AS b) x;
-- OK: combined, the states answer exactly as k_sum does: the three groups of 20 persons, and
-- NULL for the group of 2 (k = 5)
SELECT grp, regress_ks_own.combined_sum(s) AS from_states,
       (SELECT deident.k_sum(v, person) FROM regress_ks r WHERE r.grp = st.grp) AS k_sum,
       (SELECT sum(v) FROM regress_ks r WHERE r.grp = st.grp) AS plain_sum
  FROM regress_ks_own.states st GROUP BY grp ORDER BY grp;
-- the small group's state combined with itself is still 2 persons: no answer
SELECT regress_ks_own.combined_sum(s) FROM regress_ks_own.states, generate_series(1, 3)
 WHERE grp = 9;
-- all four groups' states together are the whole table
SELECT regress_ks_own.combined_sum(s) AS from_states,
       (SELECT deident.k_sum(v, person) FROM regress_ks) AS k_sum FROM regress_ks_own.states;
-- and read from their text as Citus's coord_combine_agg reads them (the input function opens
-- each state to check it, the combine function opens it again), one by one and when every
-- text is read before any is combined (a sort between); and their text with the line breaks
-- PostgreSQL's encode(..., 'base64') puts every 76 characters
SELECT regress_ks_own.combined_sum(s::text::deident.k_state) AS one_by_one,
       (SELECT regress_ks_own.combined_sum(t)
          FROM (SELECT s::text::deident.k_state AS t FROM regress_ks_own.states
                 ORDER BY grp DESC OFFSET 0) x) AS all_read_first,
       regress_ks_own.combined_sum(encode(decode(s::text, 'base64'), 'base64')::deident.k_state)
         AS line_broken,
       bool_and(position(E'\n' IN encode(decode(s::text, 'base64'), 'base64')) > 0) AS had_breaks
  FROM regress_ks_own.states;
-- a state made at a lower k (here 3) that is full at its cap: the final function refuses it
-- at k = 5 whether it is full or not (55000), and so its length does not tell either, nor
-- when combined (a review counted a published group's persons by combining its state with
-- invented ones until the length changed): groups of 1 to 4 persons, one length
RESET ROLE;
SET deident.min_group_size = 3;
SET ROLE regress_ks_analyst;
CREATE TABLE regress_ks_own.states_k3 AS
  SELECT n, regress_ks_own.partial(g, 'p' || g) AS s
    FROM generate_series(1, 4) n, generate_series(1, n) g GROUP BY n;
RESET ROLE;
RESET deident.min_group_size;
SET ROLE regress_ks_analyst;
CREATE AGGREGATE regress_ks_own.comb(deident.k_state) (SFUNC = deident._k_combine,
  STYPE = deident.k_state);
SELECT n AS persons,
       (SELECT length(decode(regress_ks_own.comb(u.s)::text, 'base64'))
          FROM (SELECT t.s) u) AS alone,
       (SELECT length(decode(regress_ks_own.comb(u.s)::text, 'base64'))
          FROM (SELECT t.s UNION ALL SELECT regress_ks_own.partial(0, 'invented')) u)
         AS with_one_invented
  FROM regress_ks_own.states_k3 t ORDER BY n;
SELECT regress_error($$SELECT regress_ks_own.combined_sum(s) FROM regress_ks_own.states_k3 WHERE n = 4$$);
-- nor one made at a higher k (here 10), which a role at k = 5 grows with invented persons
-- up to its cap (the state as the initial value of an aggregate of its own): at k = 5 the
-- final function releases every group of 5 persons or more alike, so nothing may tell 6
-- persons from 9 (a review counted them by the length of the state grown until it was
-- full): one length, full (6 + 4, 9 + 1 persons) or not
RESET ROLE;
SET deident.min_group_size = 10;
SET ROLE regress_ks_analyst;
CREATE TABLE regress_ks_own.states_k10 AS
  SELECT n, regress_ks_own.partial(g, 'p' || g) AS s
    FROM (VALUES (6), (9)) v(n), generate_series(1, n) g GROUP BY n;
RESET ROLE;
RESET deident.min_group_size;
SET ROLE regress_ks_analyst;
-- (the statements made are not shown: a sealed state is different each time)
\set ECHO none
SELECT format('CREATE AGGREGATE regress_ks_own.grow%s(integer, text) (SFUNC = deident._k_trans, '
              'STYPE = deident.k_state, INITCOND = %L)', n, s::text)
  FROM regress_ks_own.states_k10 ORDER BY n \gexec
\set ECHO all
SELECT j AS invented,
       (SELECT length(decode(regress_ks_own.grow6(0, 'invented' || i)::text, 'base64'))
          FROM generate_series(1, j) i) AS six_persons,
       (SELECT length(decode(regress_ks_own.grow9(0, 'invented' || i)::text, 'base64'))
          FROM generate_series(1, j) i) AS nine_persons
  FROM (VALUES (1), (3), (4), (5)) w(j) ORDER BY j;
-- a numeric sum of k persons or more keeps the padding of a state below k: its positive and
-- negative parts are encoded apart, and only their difference is released (a review read
-- each part from the length by merging in its own values): the same answer, one length
SELECT grp, deident.k_sum(round(v, 2), person),
       length(decode(regress_ks_own.partial_numeric(round(v, 2), person)::text, 'base64')) AS bytes
  FROM (VALUES ('A', 'a1', 200::numeric(20, 2)), ('A', 'a2', 200), ('A', 'a3', 200), ('A', 'a4', 200),
               ('A', 'a5', 200), ('B', 'b1', 40000001000), ('B', 'b2', -10000000000),
               ('B', 'b3', -10000000000), ('B', 'b4', -10000000000), ('B', 'b5', -10000000000)) t(grp, person, v)
 GROUP BY grp ORDER BY grp;

-- 2. every altered, forged or foreign value is refused (22P02), before anything is decoded
CREATE FUNCTION regress_ks_own.flip(s deident.k_state, byte int, bits int) RETURNS text
LANGUAGE sql AS $$
  SELECT encode(set_byte(decode(s::text, 'base64'), byte,
                         get_byte(decode(s::text, 'base64'), byte) # bits), 'base64')
$$;
-- OK: the value as it is
SELECT s::text::deident.k_state IS NOT NULL AS accepted FROM regress_ks_own.states WHERE grp = 0;
-- fail (a bit of the ciphertext, of the salt, of the nonce, of the tag)
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 40, 1)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 12, 128)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 30, 1)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state',
                            regress_ks_own.flip(s, length(decode(s::text, 'base64')) - 1, 1)))
  FROM regress_ks_own.states WHERE grp = 0;
-- fail (the header: key id "k1" made "k2", a key of the ring; the kind made 2, a dp_sum
-- state's, which the kind binds into the authentication; the format made 1, the one before)
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 8, 3)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 5, 3)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state', regress_ks_own.flip(s, 4, 3)))
  FROM regress_ks_own.states WHERE grp = 0;
-- fail (cut short: in the ciphertext, and in the header; not base64; base64 of something
-- else; empty)
SELECT regress_error(format('SELECT %L::deident.k_state', left(s::text, 100)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error(format('SELECT %L::deident.k_state', left(s::text, 60)))
  FROM regress_ks_own.states WHERE grp = 0;
SELECT regress_error($$SELECT 'not a state'::deident.k_state$$);
SELECT regress_error($$SELECT encode('something else entirely', 'base64')::deident.k_state$$);
SELECT regress_error($$SELECT encode('pgdS and then nothing sealed', 'base64')::deident.k_state$$);
SELECT regress_error($$SELECT ''::deident.k_state$$);
-- fail (0A000: the support functions run only inside an aggregate: no final answer, no
-- combination, no new state from a direct call)
SELECT regress_error($$SELECT deident._k_sum_int8_final(s) FROM regress_ks_own.states$$);
SELECT regress_error($$SELECT deident._k_combine(s, s) FROM regress_ks_own.states$$);
SELECT regress_error($$SELECT deident._k_trans(NULL::deident.k_state, 1, 'p1')$$);
-- fail (0A000: no window use of an aggregate declared over our support functions: a running
-- answer gives each row's value away by subtraction, and a moving aggregate's inverse
-- function would receive the live state)
CREATE AGGREGATE regress_ks_own.running_sum(integer, text) (SFUNC = deident._k_trans,
  STYPE = deident.k_state, FINALFUNC = deident._k_sum_int8_final);
SELECT regress_error($$SELECT regress_ks_own.running_sum(v, person) OVER (ORDER BY v)
                         FROM regress_ks WHERE grp = 9$$);
CREATE FUNCTION regress_ks_own.inverse(s deident.k_state, v int, p text) RETURNS deident.k_state
  LANGUAGE plpgsql AS 'BEGIN RETURN s; END';
CREATE AGGREGATE regress_ks_own.moving(int, text) (SFUNC = deident._k_trans,
  STYPE = deident.k_state, MSFUNC = deident._k_trans, MINVFUNC = regress_ks_own.inverse,
  MSTYPE = deident.k_state);
SELECT regress_error($$SELECT regress_ks_own.moving(i, 'p' || i) OVER (ORDER BY i ROWS 1 PRECEDING)
                         FROM generate_series(1, 5) i$$);
-- (the same aggregates grouped, not as window functions, work)
SELECT regress_ks_own.running_sum(v, person) FROM regress_ks WHERE grp = 0;
-- fail (42883: the type has no binary form, so the binary protocol and COPY BINARY cannot
-- move a state past its input function)
COPY (SELECT s FROM regress_ks_own.states) TO STDOUT (FORMAT binary);
RESET ROLE;

-- 3. the key ring: a state is accepted by the servers that hold the key that sealed it
-- OK: the active key changes to k2: states sealed under k1 are still accepted (k1 is in the
-- ring), new ones are sealed under k2
ALTER SYSTEM SET deident.active_key = 'k2';
SELECT regress_reload();
SELECT regress_ks_own.combined_sum(s) AS from_k1_states FROM regress_ks_own.states WHERE grp = 1;
SELECT left(regress_ks_own.partial(v, person)::text, 12) AS header
  FROM regress_ks WHERE grp = 1;
ALTER SYSTEM RESET deident.active_key;
-- fail (55000: a ring without k1)
ALTER SYSTEM SET deident.key_file = 'deident/k2only.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT s::text::deident.k_state FROM regress_ks_own.states WHERE grp = 1$$);
SELECT regress_error($$SELECT regress_ks_own.combined_sum(s) FROM regress_ks_own.states$$);
-- fail (22P02: a ring whose k1 has other bytes)
ALTER SYSTEM SET deident.key_file = 'deident/otherk1.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT regress_ks_own.combined_sum(s) FROM regress_ks_own.states$$);
ALTER SYSTEM RESET deident.key_file;
SELECT regress_reload();
SELECT regress_ks_own.combined_sum(s) AS again FROM regress_ks_own.states WHERE grp = 1;

-- 4. in a parallel plan the workers' partial states reach the leader flattened, so sealed,
-- and are opened there: the answers are the serial plan's and plain SQL's
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
EXPLAIN (VERBOSE, COSTS OFF)
  SELECT deident.k_sum(v, person), deident.k_count_distinct(person) FROM regress_ks;
SELECT deident.k_sum(v, person) AS k_sum, sum(v) AS plain_sum,
       deident.k_count_distinct(person) AS k_count_distinct, count(DISTINCT person) AS plain_count
  FROM regress_ks;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;

-- 5. deident._k_partial(aggregate, arguments...): what Citus's worker_partial_agg gives for a
-- k-aggregate (the planner turns one into the other on a Citus node: docs/citus.md), the
-- aggregate's own transition run once per row and the state's text. Anyone may call it; it
-- gives sealed states, which combine into the answers of k_sum and k_count_distinct (each
-- group's rows split into two partial states here)
SET ROLE regress_ks_analyst;
CREATE AGGREGATE regress_ks_own.combined_distinct(deident.k_state) (SFUNC = deident._k_combine,
  STYPE = deident.k_state, FINALFUNC = deident._k_distinct_final, FINALFUNC_MODIFY = READ_WRITE);
CREATE TABLE regress_ks_own.partials AS
  SELECT grp, v % 2 AS half,
         deident._k_partial('deident.k_sum(integer,text)'::regprocedure, v, person)::text AS s,
         deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person)::text AS d
    FROM regress_ks GROUP BY grp, v % 2;
SELECT left(s, 8) AS sealed_sum, left(d, 8) AS sealed_distinct
  FROM regress_ks_own.partials WHERE grp = 0 AND half = 0;
SELECT p.grp, p.s, p.d, k.s AS k_sum, k.d AS k_count_distinct
  FROM (SELECT grp, regress_ks_own.combined_sum(s::deident.k_state) AS s,
               regress_ks_own.combined_distinct(d::deident.k_state) AS d
          FROM regress_ks_own.partials GROUP BY grp) p
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_count_distinct(person) AS d
          FROM regress_ks GROUP BY grp) k USING (grp)
 ORDER BY grp;
-- OK: the dp aggregates' partial states too (what Citus pushes down for them: dp_count's
-- state is k_count_distinct's, dp_sum's and dp_avg's each person's total, sealed as kind 2;
-- where they are combined, they are charged: section 6)
SELECT count(*) AS groups, count(s) AS states, count(t) AS sum_states,
       count(*) FILTER (WHERE substr(decode(t, 'base64'), 6, 1) = '\x02') AS of_kind_2
  FROM (SELECT deident._k_partial('deident.dp_count(text)'::regprocedure, person) AS s,
               deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure,
                                  v, person, 0, 10)::text AS t
          FROM regress_ks GROUP BY grp) x;
-- a dp_sum state's length does not tell how many persons a group below k has (padded as if
-- it had k = 5), nor their totals; at or above k only its size class
SELECT count(DISTINCT len) FILTER (WHERE n < 5) AS lengths_below_k,
       count(DISTINCT len) FILTER (WHERE n >= 5) AS lengths_at_5_to_9
  FROM (SELECT n, length(deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure,
                                            g * 1000, 'p' || g, 0, 10)::text) AS len
          FROM generate_series(1, 9) n, generate_series(1, n) g GROUP BY n) x;
CREATE TABLE regress_ks_own.dp_partials AS
  SELECT grp, deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure,
                                 v, person, 0, 10)::text AS t
    FROM regress_ks GROUP BY grp;
-- fail (22P02): a dp_sum state where a k-aggregate's is expected: the other family
SELECT regress_error($$SELECT regress_ks_own.combined_distinct(t::deident.k_state) FROM regress_ks_own.dp_partials$$);
-- fail: dp_sum's bounds through _k_partial as through dp_sum (NULL, reversed)
SELECT regress_error($$SELECT deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure, v, person, NULL::integer, 10) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure, v, person, 10, 0) FROM regress_ks$$);
-- fail: an aggregate that is not a k-aggregate (a built-in one), arguments
-- of other types than the aggregate's or too few, no aggregate, a window
SELECT regress_error($$SELECT deident._k_partial('sum(integer)'::regprocedure, v) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial('deident.k_sum(integer,text)'::regprocedure, v::bigint, person) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial('deident.k_sum(integer,text)'::regprocedure, person) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial(NULL::oid, person) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person) OVER () FROM regress_ks$$);
-- fail, when planned, whatever the rows (a review had these fail only where a row existed):
-- an aggregate that is not a constant, arguments of other types, over no rows
SELECT regress_error($$SELECT deident._k_partial(('deident.dp_sum(integer,text,integer,integer)'::text)::regprocedure, v, person, 10, 0) FROM regress_ks WHERE false$$);
SELECT regress_error($$SELECT deident._k_partial((SELECT 'deident.k_sum(integer,text)'::regprocedure), v, person) FROM regress_ks WHERE false$$);
SELECT regress_error($$SELECT deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure, v::bigint, person, 0::bigint, 10::bigint) FROM regress_ks WHERE false$$);
RESET ROLE;
-- fail: as for the aggregate itself, the caller must be allowed to execute it
REVOKE EXECUTE ON FUNCTION deident.k_count_distinct(text) FROM PUBLIC;
SET ROLE regress_ks_analyst;
SELECT regress_error($$SELECT deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person) FROM regress_ks$$);
SELECT regress_error($$SELECT deident.k_count_distinct(person) FROM regress_ks$$);
SELECT regress_error($$SELECT deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person) FROM regress_ks WHERE false$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION deident.k_count_distinct(text) TO PUBLIC;

-- 6. deident._k_combine_partials(aggregate, partial state's text, NULL::result type): what
-- Citus's coord_combine_agg does for a k-aggregate (the planner puts it in coord_combine_agg's
-- place in the plan Citus makes on a coordinator: docs/citus.md): each text opened once and
-- combined into the group's state, then the aggregate's own final function, where k is
-- checked. The answers of k_sum, k_count_distinct and k_avg themselves, and of combining
-- through the type's input and combine functions (section 5); group 9, of 2 persons, stays
-- NULL; a NULL text adds nothing
SET ROLE regress_ks_analyst;
ALTER TABLE regress_ks_own.partials ADD COLUMN a text;
UPDATE regress_ks_own.partials p SET a = x.a
  FROM (SELECT grp, v % 2 AS half,
               deident._k_partial('deident.k_avg(integer,text)'::regprocedure, v, person)::text AS a
          FROM regress_ks GROUP BY grp, v % 2) x
 WHERE x.grp = p.grp AND x.half = p.half;
INSERT INTO regress_ks_own.partials VALUES (0, 2, NULL, NULL, NULL);
SELECT p.grp, p.s, p.d, p.a, k.s AS k_sum, k.d AS k_count_distinct, k.a AS k_avg,
       p.s IS NOT DISTINCT FROM c.s AND p.d IS NOT DISTINCT FROM c.d AS as_combined
  FROM (SELECT grp,
               deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure,
                                           s::cstring, NULL::bigint) AS s,
               deident._k_combine_partials('deident.k_count_distinct(text)'::regprocedure,
                                           d::cstring, NULL::bigint) AS d,
               deident._k_combine_partials('deident.k_avg(integer,text)'::regprocedure,
                                           a::cstring, NULL::numeric) AS a
          FROM regress_ks_own.partials GROUP BY grp) p
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_count_distinct(person) AS d,
               deident.k_avg(v, person) AS a
          FROM regress_ks GROUP BY grp) k USING (grp)
  JOIN (SELECT grp, regress_ks_own.combined_sum(s::deident.k_state) AS s,
               regress_ks_own.combined_distinct(d::deident.k_state) AS d
          FROM regress_ks_own.partials GROUP BY grp) c USING (grp)
 ORDER BY grp;
-- OK: an ORDER BY inside either call, over columns that are none of its arguments, changes
-- nothing (a review found such a _k_partial refused as of the wrong types)
SELECT p.grp, p.s, p.d, k.s AS k_sum, k.d AS k_count_distinct
  FROM (SELECT grp,
               deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure,
                                           s, NULL::bigint ORDER BY half) AS s,
               deident._k_combine_partials('deident.k_count_distinct(text)'::regprocedure,
                                           d, NULL::bigint ORDER BY half DESC) AS d
          FROM (SELECT grp, v % 2 AS half,
                       deident._k_partial('deident.k_sum(integer,text)'::regprocedure, v, person
                                          ORDER BY grp, v DESC) AS s,
                       deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person
                                          ORDER BY v) AS d
                  FROM regress_ks GROUP BY grp, v % 2) x
         GROUP BY grp) p
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_count_distinct(person) AS d
          FROM regress_ks GROUP BY grp) k USING (grp)
 ORDER BY grp;
SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, NULL::cstring,
                                   NULL::bigint) IS NULL AS no_state;
-- fail (0A000): the dp aggregates' partial states are combined only in the plan Citus makes for
-- the dp aggregate (docs/citus.md), not by a statement, whose states could come from any expression
-- as the person (a review counted 500 "persons" made of one row with _k_partial over
-- email || n): refused when the statement is planned, for the analyst as for a superuser,
-- before anything is charged
SELECT regress_error($$SELECT deident._k_combine_partials('deident.dp_count(text)'::regprocedure, d::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.dp_sum(integer,text,integer,integer)'::regprocedure, t::cstring, NULL::bigint) FROM regress_ks_own.dp_partials$$);
-- and with an ORDER BY inside the call, over a column that is none of its arguments (a call
-- with one was not taken for a combination of dp states until its final function: over no
-- rows, answered), when planned
SELECT regress_error($$SELECT deident._k_combine_partials('deident.dp_count(text)'::regprocedure, d::cstring, NULL::bigint ORDER BY half) FROM regress_ks_own.partials WHERE false GROUP BY grp$$);
RESET ROLE;
SELECT regress_error($$SELECT deident._k_combine_partials('deident.dp_avg(integer,text,integer,integer)'::regprocedure, t::cstring, NULL::numeric) FROM regress_ks_own.dp_partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.dp_count(text)'::regprocedure, s::cstring, NULL::bigint)
                        FROM (SELECT deident._k_partial('deident.dp_count(text)'::regprocedure, person || n)::text AS s
                                FROM regress_ks, generate_series(1, 500) n WHERE person = 'p1') x$$);
-- and so is one whose aggregate the planner would fold into dp_count's only after the check:
-- a function (42809, as its final function refuses any aggregate that is not a constant), a
-- parameter, or dp_count's oid as a number in the body of a set-returning SQL function (which
-- is then planned, and checked, on its own instead of inlined)
CREATE FUNCTION regress_ks_dp_oid() RETURNS oid LANGUAGE sql IMMUTABLE
  AS $$ SELECT 'deident.dp_count(text)'::regprocedure::oid $$;
SELECT regress_error($$SELECT deident._k_combine_partials(regress_ks_dp_oid(), d::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
-- (with an ORDER BY inside the call too, over no rows)
SELECT regress_error($$SELECT deident._k_combine_partials(regress_ks_dp_oid(), d::cstring, NULL::bigint ORDER BY half) FROM regress_ks_own.partials WHERE false GROUP BY grp$$);
PREPARE regress_ks_combine(oid) AS
  SELECT deident._k_combine_partials($1, d::cstring, NULL::bigint) FROM regress_ks_own.partials;
SELECT regress_error($$EXECUTE regress_ks_combine('deident.dp_count(text)'::regprocedure)$$);
DEALLOCATE regress_ks_combine;
DO $$
BEGIN
  EXECUTE format('CREATE FUNCTION regress_ks_combined() RETURNS SETOF bigint LANGUAGE sql AS %L',
                 format('SELECT deident._k_combine_partials(%L::oid, d::cstring, NULL::bigint) FROM regress_ks_own.partials',
                        'deident.dp_count(text)'::regprocedure::oid));
END $$;
SELECT regress_error($$SELECT * FROM regress_ks_combined()$$);
-- and one that PostgreSQL inlines after the checks (a set-returning SQL function whose body
-- hides the aggregate's name and reads a view with the combination) is refused when the
-- executor starts, before anything is charged: it carries no mark of the checks
CREATE VIEW regress_ks_combining AS
  SELECT deident._k_combine_partials('deident.dp_count(text)'::regprocedure, d::cstring, NULL::bigint) AS c
    FROM regress_ks_own.partials;
CREATE FUNCTION regress_ks_hidden() RETURNS SETOF bigint LANGUAGE sql STABLE
  AS $$ SELECT c FROM regress_ks_combining $$;
SELECT regress_error($$SELECT * FROM regress_ks_hidden()$$);
DROP FUNCTION regress_ks_combined(), regress_ks_dp_oid(), regress_ks_hidden();
DROP VIEW regress_ks_combining;
SET ROLE regress_ks_analyst;
-- fail: an aggregate that is not a k-aggregate (a built-in one), no
-- aggregate, a type argument that is not the aggregate's result type (the final function's
-- answer would be read as that type), an aggregate that is not a constant (the final function
-- finds it in the call), the state of another k-aggregate (either way round), a dp_sum state
-- (the other family), an aggregate of pg_deident's over k_state that is not a k-aggregate, a
-- text that is not a sealed state, a window
SELECT regress_error($$SELECT deident._k_combine_partials('sum(integer)'::regprocedure, s::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials(NULL::oid, s::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::text) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_avg(integer,text)'::regprocedure, a::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials(CASE WHEN half >= 0 THEN 'deident.k_sum(integer,text)'::regprocedure::oid END, s::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, d::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_count_distinct(text)'::regprocedure, s::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_count_distinct(text)'::regprocedure, t::cstring, NULL::bigint) FROM regress_ks_own.dp_partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident._k_partial(oid,"any")'::regprocedure, d::cstring, NULL::cstring) FROM regress_ks_own.partials$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, 'not a state'::cstring, NULL::bigint)$$);
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::bigint) OVER () FROM regress_ks_own.partials$$);
RESET ROLE;
-- fail: as for the aggregate itself, the caller must be allowed to execute it
REVOKE EXECUTE ON FUNCTION deident.k_sum(integer, text) FROM PUBLIC;
SET ROLE regress_ks_analyst;
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::bigint) FROM regress_ks_own.partials$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION deident.k_sum(integer, text) TO PUBLIC;
-- fail (55000): states made under k = 5 stop counting persons at 5, so they cannot tell
-- whether a group reaches a higher k set later (a Citus coordinator's session SET that its
-- workers did not get): an error, not a NULL that looks like a small group
SET deident.min_group_size = 10;
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::bigint) FROM regress_ks_own.partials WHERE grp = 0$$);
-- the same error for the group of 2 persons: it tells nothing about the group
SELECT regress_error($$SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::bigint) FROM regress_ks_own.partials WHERE grp = 9$$);
-- k_count_distinct's states keep every person: they answer
SELECT deident._k_combine_partials('deident.k_count_distinct(text)'::regprocedure, d::cstring, NULL::bigint) AS distinct_persons
  FROM regress_ks_own.partials WHERE grp = 0;
RESET deident.min_group_size;

-- 7. _k_partial keeps a full state of k_sum or k_avg over integers, or of k_count, packed in
-- its transition value (src/aggregates/partial.rs, Packed: the rows in 24 bits, the sum in
-- 39), and makes it an object again when a row takes it out of that range. Each group's rows
-- split into two partial states (one for groups 0 and 1) and combined answer as k_sum, k_avg
-- and k_count themselves and as plain SQL:
-- sums that leave the packed range upwards and downwards (groups 0 and 1), sums of bigint
-- near its ends, never packed (2, 3), a packed sum that a bigint row of 2^63 - 1 takes past
-- bigint (4: k_sum(bigint) is numeric), small sums packed throughout (5), rows without a
-- value or a person once full (0 and 5: they add nothing), a group below k (6, NULL), one
-- of exactly k persons (7), and a bigint sum that crosses the packed range at every row (8;
-- that it then stays an object, rather than leaving one behind at each crossing, shows in
-- memory only)
SET ROLE regress_ks_analyst;
CREATE TABLE regress_ks_own.packed AS
  SELECT g, g % 6 AS grp, format('p%s', g % 40) AS person,
         CASE g % 6 WHEN 0 THEN 2147483647 WHEN 1 THEN -2147483648 ELSE g END AS i4,
         CASE g % 6 WHEN 2 THEN 9223372036854775807 - g WHEN 3 THEN -9223372036854775807 + g
                    WHEN 4 THEN CASE WHEN g > 1100 THEN 9223372036854775807 ELSE g END
                    ELSE g * 1000003 END AS i8,
         (g % 30000 - 15000)::smallint AS i2
    FROM generate_series(1, 1200) g
  UNION ALL SELECT 1200 + g, 6, format('p%s', g), g, g, g::smallint FROM generate_series(1, 4) g
  UNION ALL SELECT 1300 + g, 7, format('p%s', g % 5), g, g, g::smallint FROM generate_series(1, 50) g
  UNION ALL SELECT 1500 + g, 8, format('p%s', g % 10), g,
                   CASE WHEN g % 2 = 0 THEN 300000000000 ELSE -300000000000 END, g::smallint
              FROM generate_series(1, 40) g
  UNION ALL VALUES (1401, 0, NULL, 7, 7, 7::smallint), (1402, 0, 'p1', NULL, NULL, NULL),
                   (1403, 5, NULL, 7, 7, 7::smallint), (1404, 5, 'p99', NULL, NULL, NULL);
CREATE TABLE regress_ks_own.packed_partials AS
  SELECT grp, CASE WHEN grp > 1 THEN g / 6 % 2 END AS half,
         deident._k_partial('deident.k_sum(integer,text)'::regprocedure, i4, person)::text AS s4,
         deident._k_partial('deident.k_sum(bigint,text)'::regprocedure, i8, person)::text AS s8,
         deident._k_partial('deident.k_sum(smallint,text)'::regprocedure, i2, person)::text AS s2,
         deident._k_partial('deident.k_avg(integer,text)'::regprocedure, i4, person)::text AS a4,
         deident._k_partial('deident.k_count(text)'::regprocedure, person)::text AS c
    FROM regress_ks_own.packed GROUP BY 1, 2;
SELECT p.grp, p.s4, p.s8, p.s2, p.a4, p.c,
       (p.s4, p.s8, p.s2, p.a4, p.c) IS NOT DISTINCT FROM (k.s4, k.s8, k.s2, k.a4, k.c) AS as_k_aggregates,
       (p.s4, p.s8, p.s2, p.c) IS NOT DISTINCT FROM (x.s4, x.s8, x.s2, x.c) AS as_plain_sql
  FROM (SELECT grp,
               deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s4::cstring, NULL::bigint) AS s4,
               deident._k_combine_partials('deident.k_sum(bigint,text)'::regprocedure, s8::cstring, NULL::numeric) AS s8,
               deident._k_combine_partials('deident.k_sum(smallint,text)'::regprocedure, s2::cstring, NULL::bigint) AS s2,
               deident._k_combine_partials('deident.k_avg(integer,text)'::regprocedure, a4::cstring, NULL::numeric) AS a4,
               deident._k_combine_partials('deident.k_count(text)'::regprocedure, c::cstring, NULL::bigint) AS c
          FROM regress_ks_own.packed_partials GROUP BY grp) p
  JOIN (SELECT grp, deident.k_sum(i4, person) AS s4, deident.k_sum(i8, person) AS s8,
               deident.k_sum(i2, person) AS s2, deident.k_avg(i4, person) AS a4,
               deident.k_count(person) AS c
          FROM regress_ks_own.packed GROUP BY grp) k USING (grp)
  JOIN (SELECT grp, sum(i4) FILTER (WHERE person IS NOT NULL) AS s4,
               sum(i8) FILTER (WHERE person IS NOT NULL) AS s8,
               sum(i2) FILTER (WHERE person IS NOT NULL) AS s2,
               count(person) AS c
          FROM regress_ks_own.packed GROUP BY grp HAVING count(DISTINCT person) >= 5) x USING (grp)
 ORDER BY grp;
-- the group below k gives NULL through the partial states too
SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s4::cstring, NULL::bigint) AS below_k
  FROM regress_ks_own.packed_partials WHERE grp = 6;
-- a packed state (groups 5 and 7) seals to the length of an object's full state (group 0,
-- whose sum left the packed range): 48 bytes framed, 101 sealed
SELECT DISTINCT length(decode(s4, 'base64')) AS sealed_bytes
  FROM regress_ks_own.packed_partials WHERE grp IN (0, 5, 7);
-- a group below k is kept in one chunk until it has k persons (partial.rs, Pre), which the
-- first row that counts makes: rows without a person or a value first and while a group is
-- below k, and persons in two rows each (9: six persons, a first row without a person, rows
-- without a value and without a person among theirs; 10: the same rows but p5's and p6's,
-- four persons, below k), a bigint sum past bigint's range before the group is full (11: two
-- rows of 2^63 - 1, then three persons of 0; 14: the same in a part below k when split),
-- negative smallints, persons of type integer and uuid, and groups of 17 and 16 persons
-- (12, 13) at k = 16, the most a chunk holds, and at k = 17, where groups below k are
-- objects. Each group whole in one partial state and in two (its rows split by parity)
-- answers as k_sum, k_avg and k_count and as plain SQL, with hashed and with sorted grouping
-- (the rows reach a hashed grouping in g's order; a sorted one may reorder a group's rows)
CREATE TABLE regress_ks_own.pre (g int, grp int, person text, i8 bigint, i4 int);
INSERT INTO regress_ks_own.pre VALUES
  (1, 9, NULL, 5, 5), (2, 9, 'p1', NULL, NULL), (3, 9, 'p1', 1, 1), (4, 9, 'p1', 2, 2),
  (5, 9, 'p2', 3, 3), (6, 9, NULL, 9, 9), (7, 9, 'p2', 4, 4), (8, 9, 'p3', NULL, NULL),
  (9, 9, 'p3', 5, 5), (10, 9, 'p4', 6, 6), (11, 9, 'p4', 7, 7), (12, 9, 'p5', 8, 8),
  (13, 9, 'p5', 9, 9), (14, 9, 'p6', 10, 10),
  (21, 11, 'q1', 9223372036854775807, 1), (22, 11, 'q2', 9223372036854775807, 2),
  (23, 11, 'q3', 0, 3), (24, 11, 'q4', 0, 4), (25, 11, 'q5', 0, 5),
  (30, 14, 's1', 9223372036854775807, 1), (32, 14, 's2', 9223372036854775807, 2),
  (31, 14, 's3', 1, 3), (33, 14, 's4', 2, 4), (34, 14, 's5', 3, 5), (35, 14, 's6', 4, 6);
INSERT INTO regress_ks_own.pre SELECT g, 10, person, i8, i4 FROM regress_ks_own.pre
  WHERE grp = 9 AND person IS DISTINCT FROM 'p5' AND g < 14;
INSERT INTO regress_ks_own.pre
  SELECT 100 + g, 12 + g / 17, format('r%s', g % 17), g * 1000, g FROM generate_series(0, 32) g;
ALTER TABLE regress_ks_own.pre ADD COLUMN i2 smallint, ADD COLUMN pi int, ADD COLUMN pu uuid;
UPDATE regress_ks_own.pre SET i2 = -i4, pi = hashtext(person), pu = md5(person)::uuid;
CREATE FUNCTION regress_ks_own.pre_answers(k int, hashed boolean) RETURNS TABLE (grp int,
    split boolean, s8 numeric, s4 bigint, s2 bigint, a4 numeric, c bigint, cu bigint,
    as_k_aggregates boolean, as_plain_sql boolean)
  LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM set_config('deident.min_group_size', k::text, true);
  PERFORM set_config('enable_hashagg', hashed::text, true);
  RETURN QUERY
  SELECT p.grp, p.split, p.s8, p.s4, p.s2, p.a4, p.c, p.cu,
         (p.s8, p.s4, p.s2, p.a4, p.c, p.cu) IS NOT DISTINCT FROM (ka.s8, ka.s4, ka.s2, ka.a4, ka.c, ka.cu),
         (p.s8, p.s4, p.s2, p.a4, p.c, p.cu) IS NOT DISTINCT FROM (x.s8, x.s4, x.s2, x.a4, x.c, x.cu)
    FROM (SELECT q.grp, q.split,
                 deident._k_combine_partials('deident.k_sum(bigint,text)'::regprocedure, q.s8::cstring, NULL::numeric) AS s8,
                 deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, q.s4::cstring, NULL::bigint) AS s4,
                 deident._k_combine_partials('deident.k_sum(smallint,integer)'::regprocedure, q.s2::cstring, NULL::bigint) AS s2,
                 deident._k_combine_partials('deident.k_avg(integer,text)'::regprocedure, q.a4::cstring, NULL::numeric) AS a4,
                 deident._k_combine_partials('deident.k_count(text)'::regprocedure, q.c::cstring, NULL::bigint) AS c,
                 deident._k_combine_partials('deident.k_count(uuid)'::regprocedure, q.cu::cstring, NULL::bigint) AS cu
            FROM (SELECT r.grp, h.split,
                         deident._k_partial('deident.k_sum(bigint,text)'::regprocedure, r.i8, r.person)::text AS s8,
                         deident._k_partial('deident.k_sum(integer,text)'::regprocedure, r.i4, r.person)::text AS s4,
                         deident._k_partial('deident.k_sum(smallint,integer)'::regprocedure, r.i2, r.pi)::text AS s2,
                         deident._k_partial('deident.k_avg(integer,text)'::regprocedure, r.i4, r.person)::text AS a4,
                         deident._k_partial('deident.k_count(text)'::regprocedure, r.person)::text AS c,
                         deident._k_partial('deident.k_count(uuid)'::regprocedure, r.pu)::text AS cu
                    FROM (SELECT * FROM regress_ks_own.pre ORDER BY g) r,
                         LATERAL (VALUES (false), (true)) h(split)
                   GROUP BY r.grp, h.split, CASE WHEN h.split THEN r.g % 2 END) q
           GROUP BY q.grp, q.split) p
    JOIN (SELECT r.grp, deident.k_sum(r.i8, r.person) AS s8, deident.k_sum(r.i4, r.person) AS s4,
                 deident.k_sum(r.i2, r.pi) AS s2, deident.k_avg(r.i4, r.person) AS a4,
                 deident.k_count(r.person) AS c, deident.k_count(r.pu) AS cu
            FROM regress_ks_own.pre r GROUP BY r.grp) ka USING (grp)
    JOIN (SELECT r.grp,
                 CASE WHEN count(DISTINCT r.person) FILTER (WHERE r.i8 IS NOT NULL) >= k
                      THEN sum(r.i8) FILTER (WHERE r.person IS NOT NULL) END AS s8,
                 CASE WHEN count(DISTINCT r.person) FILTER (WHERE r.i4 IS NOT NULL) >= k
                      THEN sum(r.i4) FILTER (WHERE r.person IS NOT NULL) END AS s4,
                 CASE WHEN count(DISTINCT r.pi) FILTER (WHERE r.i2 IS NOT NULL) >= k
                      THEN sum(r.i2) FILTER (WHERE r.pi IS NOT NULL) END AS s2,
                 CASE WHEN count(DISTINCT r.person) FILTER (WHERE r.i4 IS NOT NULL) >= k
                      THEN avg(r.i4) FILTER (WHERE r.person IS NOT NULL) END AS a4,
                 CASE WHEN count(DISTINCT r.person) >= k THEN count(r.person) END AS c,
                 CASE WHEN count(DISTINCT r.pu) >= k THEN count(r.pu) END AS cu
            FROM regress_ks_own.pre r GROUP BY r.grp) x USING (grp)
   ORDER BY p.grp, p.split;
END $f$;
RESET ROLE;
-- (k is a superuser's setting: the function sets it for its statement)
SELECT * FROM regress_ks_own.pre_answers(5, true) WHERE grp < 12 OR grp = 14;
SELECT bool_and(as_k_aggregates AND as_plain_sql) AS sorted_grouping_too
  FROM regress_ks_own.pre_answers(5, false);
-- a group's rows in a known order (a VALUES list, one group): rows without a person or a
-- value before the first that counts, and between
SELECT deident._k_combine_partials('deident.k_sum(integer,text)'::regprocedure, s::cstring, NULL::bigint) AS k_sum,
       deident._k_combine_partials('deident.k_count(text)'::regprocedure, c::cstring, NULL::bigint) AS k_count
  FROM (SELECT deident._k_partial('deident.k_sum(integer,text)'::regprocedure, v, p)::text AS s,
               deident._k_partial('deident.k_count(text)'::regprocedure, p)::text AS c
          FROM (VALUES (NULL, 5), ('a', NULL), ('a', 1), ('b', 2), (NULL, 9), ('c', 3),
                       ('d', NULL), ('d', 4), ('e', 5)) v(p, v)) x;
SELECT * FROM regress_ks_own.pre_answers(16, true) WHERE grp IN (12, 13);
SELECT * FROM regress_ks_own.pre_answers(17, true) WHERE grp IN (12, 13);
-- a group below k seals to the length of an object's state below k (section 1), for 1 to 6
-- persons: one length below k, the full state's from k on
SELECT n AS persons,
       length(decode(deident._k_partial('deident.k_sum(integer,text)'::regprocedure, g, 'p' || g)::text, 'base64')) AS bytes,
       length(decode(regress_ks_own.partial(g, 'p' || g)::text, 'base64')) AS object_bytes
  FROM generate_series(1, 6) n, generate_series(1, n) g GROUP BY n ORDER BY n;
-- fail (42804): _k_partial's transition value is internal, so its functions refuse to run for
-- any other aggregate. Only a superuser may declare one over internal (PostgreSQL refuses
-- anyone else: "aggregate transition data type cannot be internal"); paired with another's
-- functions, its transition function under another final function (which would read a
-- packed state as a pointer) and its final function over another transition function's
-- state are refused before any state is read
CREATE AGGREGATE regress_ks_own.mixed_trans(oid, integer, text) (SFUNC = deident._k_partial_trans,
  STYPE = internal, FINALFUNC = numeric_avg);
CREATE AGGREGATE regress_ks_own.mixed_final(numeric) (SFUNC = numeric_avg_accum,
  STYPE = internal, FINALFUNC = deident._k_partial_final);
SELECT regress_error($$SELECT regress_ks_own.mixed_trans('deident.k_sum(integer,text)'::regprocedure, i4, person) FROM regress_ks_own.packed$$);
SELECT regress_error($$SELECT regress_ks_own.mixed_final(i4) FROM regress_ks_own.packed$$);
-- and where such an aggregate shares _k_partial's transition (the same function over the same
-- arguments: one transition, two final functions), the state is not made
SELECT regress_error($$SELECT deident._k_partial('deident.k_sum(integer,text)'::regprocedure, i4, person), regress_ks_own.mixed_trans('deident.k_sum(integer,text)'::regprocedure, i4, person) FROM regress_ks_own.packed$$);
-- fail (42804): a database made at 0.2.0 before _k_partial's state became internal declares
-- it over k_state, by reference, as made here; nodeAgg would take a packed state for a
-- pointer, so the transition function refuses to run there
BEGIN;
ALTER EXTENSION pg_deident DROP AGGREGATE deident._k_partial(oid, "any");
DROP AGGREGATE deident._k_partial(oid, "any");
CREATE FUNCTION deident._k_partial_trans_by_ref(deident.k_state, oid, "any")
  RETURNS deident.k_state LANGUAGE c AS '$libdir/pg_deident', 'deident_k_partial_trans';
CREATE AGGREGATE deident._k_partial(oid, "any") (SFUNC = deident._k_partial_trans_by_ref,
  STYPE = deident.k_state, FINALFUNC = deident._k_state_out);
SELECT regress_error($$SELECT deident._k_partial('deident.k_count(text)'::regprocedure, person) FROM regress_ks_own.packed$$);
ROLLBACK;
SET ROLE regress_ks_analyst;
SELECT regress_error($$CREATE AGGREGATE regress_ks_own.mine(oid, integer, text) (SFUNC = deident._k_partial_trans, STYPE = internal, FINALFUNC = deident._k_partial_final)$$);
RESET ROLE;

DROP SCHEMA regress_ks_own CASCADE;
DROP TABLE regress_ks;
DROP ROLE regress_ks_analyst;
