-- pg_deident 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_deident UPDATE). What 0.2.0 changed in the
-- catalog, and nothing else: tests/upgrade.sh checks that a database updated from 0.1.0 holds
-- exactly what a fresh CREATE EXTENSION of 0.2.0 makes (docs/upgrades.md). Like every
-- released script, this one is frozen: later changes go into the next upgrade script.
\echo Use "ALTER EXTENSION pg_deident UPDATE TO '0.2.0'" to load this file. \quit

-- 0. The schema must still be the superusers' alone, as CREATE EXTENSION required it to be
-- (src/preload.rs): this script runs as a superuser with search_path = deident, and an object
-- there that a role without superuser made (a better-matching overload of a function or an
-- operator used below, or bound into a view made below) would run with the updater's rights.
-- So: owned by a superuser, CREATE granted to superusers only, and nothing in it owned by
-- anyone else. Every name in this check is schema-qualified.
DO $$
DECLARE
  ns pg_catalog.oid := pg_catalog.to_regnamespace('deident');
  super CONSTANT pg_catalog.text :=
    'SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolsuper';
  foreign_owner pg_catalog.bool;
BEGIN
  EXECUTE pg_catalog.format($q$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) $1 AND proowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) $1 AND relowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_type WHERE typnamespace OPERATOR(pg_catalog.=) $1 AND typowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_operator WHERE oprnamespace OPERATOR(pg_catalog.=) $1 AND oprowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_collation WHERE collnamespace OPERATOR(pg_catalog.=) $1 AND collowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_conversion WHERE connamespace OPERATOR(pg_catalog.=) $1 AND conowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_opclass WHERE opcnamespace OPERATOR(pg_catalog.=) $1 AND opcowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_opfamily WHERE opfnamespace OPERATOR(pg_catalog.=) $1 AND opfowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_ts_config WHERE cfgnamespace OPERATOR(pg_catalog.=) $1 AND cfgowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_ts_dict WHERE dictnamespace OPERATOR(pg_catalog.=) $1 AND dictowner NOT IN (%1$s))
        OR EXISTS (SELECT FROM pg_catalog.pg_statistic_ext WHERE stxnamespace OPERATOR(pg_catalog.=) $1 AND stxowner NOT IN (%1$s))$q$,
    super) INTO foreign_owner USING ns;
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
            JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
           WHERE n.oid OPERATOR(pg_catalog.=) ns)
     OR EXISTS (SELECT FROM pg_catalog.pg_namespace n,
                       LATERAL pg_catalog.aclexplode(n.nspacl) a
                 WHERE n.oid OPERATOR(pg_catalog.=) ns
                   AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                   AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                                      WHERE r.oid OPERATOR(pg_catalog.=) a.grantee), false))
     OR foreign_owner THEN
    RAISE EXCEPTION 'schema "deident" is not the superusers'' alone'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'It is owned by, or grants CREATE to, a role that is not a superuser, or it holds an object such a role owns; the update would run that role''s objects with superuser rights.',
            HINT = 'Revoke CREATE on schema deident from roles that are not superusers, drop (after checking) what they made in it, then update again.';
  END IF;
END $$;

-- 1. pseudonymize(bytea) has its own entry point (the text one reads its argument as text).
CREATE OR REPLACE FUNCTION deident.pseudonymize(value bytea, domain text DEFAULT '', length integer DEFAULT 22, key_id text DEFAULT '')
RETURNS text LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize_bytea';

-- 2. pseudonymize_int: a keyed permutation of integer (FF1).
CREATE FUNCTION deident.pseudonymize_int(value integer, domain text DEFAULT '', key_id text DEFAULT '')
RETURNS integer LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize_int';
COMMENT ON FUNCTION deident.pseudonymize_int(integer, text, text) IS
'keyed permutation of the integer range (FF1 over AES-256, the domain as tweak): distinct values never collide';

-- 3. The effective labels are read in C (inheritance children included); personal_data moves
-- to the new function, and the SQL one goes. The view is made again rather than replaced (its
-- column_name changes collation, which CREATE OR REPLACE VIEW cannot do): a DBA's own view on
-- deident.personal_data stops the update with an ERROR that names it; drop it, update, and
-- make it again.
CREATE FUNCTION deident._column_labels("rel" oid) RETURNS TABLE ("column_name" text, "attnum" smallint, "label" text)
STRICT STABLE PARALLEL SAFE LANGUAGE c
AS 'MODULE_PATHNAME', '_column_labels_wrapper';
COMMENT ON FUNCTION deident._column_labels(oid) IS
'effective pg_deident label of each labelled column of a relation, its ancestors'' labels included';
DROP VIEW deident.personal_data;
CREATE VIEW deident.personal_data AS
SELECT n.nspname AS schema_name, c.relname AS table_name, l.column_name::name AS column_name, l.label
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL deident._column_labels(c.oid) l
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
   AND (c.relispartition
        OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid)
        OR EXISTS (SELECT FROM pg_seclabel s
                    WHERE s.objoid = c.oid AND s.classoid = 'pg_class'::regclass
                      AND s.provider = 'deident'))
   AND has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES');
COMMENT ON VIEW deident.personal_data IS
'columns labelled as personal data (SECURITY LABEL FOR deident), partitions and inheritance children included';
GRANT SELECT ON deident.personal_data TO PUBLIC;
DROP FUNCTION deident._column_labels(regclass);

-- 4. The k-aggregates' states become deident.k_state, a real type sealed whenever a state
-- leaves memory (src/aggregates/expanded.rs, docs/sealed-states.md), so that Citus pushes
-- them down. The type and its support functions are made as a fresh install makes them
-- (sql/k_aggregates.sql), then each aggregate is moved to them in its catalog row, with its
-- dependencies: CREATE AGGREGATE cannot be repeated, there is no ALTER for an aggregate's
-- support functions or state type, and dropping the aggregates would drop the users' views
-- that call them. The support functions over internal go (dp_count, made below, runs
-- k_count_distinct's over k_state too).
CREATE TYPE deident.k_state;
CREATE FUNCTION deident._k_state_in(cstring) RETURNS deident.k_state
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_state_in';
CREATE FUNCTION deident._k_state_out(deident.k_state) RETURNS cstring
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_state_out';
CREATE TYPE deident.k_state (
  INPUT = deident._k_state_in, OUTPUT = deident._k_state_out,
  INTERNALLENGTH = VARIABLE, STORAGE = external);
COMMENT ON TYPE deident.k_state IS
  'partial state of the k-anonymity-checked and differentially private aggregates: sealed whenever it leaves memory';
DO $$
DECLARE
  person text;
  value text;
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE pg_catalog.format('CREATE FUNCTION deident._k_count_trans(deident.k_state, %s) '
                   'RETURNS deident.k_state LANGUAGE c PARALLEL SAFE '
                   'AS ''MODULE_PATHNAME'', ''deident_k_count_trans''', person);
    EXECUTE pg_catalog.format('CREATE FUNCTION deident._k_distinct_trans(deident.k_state, %s) '
                   'RETURNS deident.k_state LANGUAGE c PARALLEL SAFE '
                   'AS ''MODULE_PATHNAME'', ''deident_k_distinct_trans''', person);
    FOREACH value IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric', 'real',
                                 'double precision'] LOOP
      EXECUTE pg_catalog.format('CREATE FUNCTION deident._k_trans(deident.k_state, %s, %s) '
                     'RETURNS deident.k_state LANGUAGE c PARALLEL SAFE '
                     'AS ''MODULE_PATHNAME'', ''deident_k_trans''', value, person);
    END LOOP;
  END LOOP;
END $$;
CREATE FUNCTION deident._k_combine(deident.k_state, deident.k_state) RETURNS deident.k_state
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_combine';
CREATE FUNCTION deident._k_count_final(deident.k_state) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_count_final';
CREATE FUNCTION deident._k_distinct_final(deident.k_state) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_distinct_final';
CREATE FUNCTION deident._k_sum_int8_final(deident.k_state) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_int8_final';
CREATE FUNCTION deident._k_sum_numeric_final(deident.k_state) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_numeric_final';
CREATE FUNCTION deident._k_sum_float4_final(deident.k_state) RETURNS real
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float4_final';
CREATE FUNCTION deident._k_sum_float8_final(deident.k_state) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float8_final';
CREATE FUNCTION deident._k_avg_numeric_final(deident.k_state) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_numeric_final';
CREATE FUNCTION deident._k_avg_float8_final(deident.k_state) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_float8_final';

-- Each k-aggregate: its transition function over k_state for its argument types, its final
-- function of the same name over k_state, the combine function over k_state, no serialize
-- or deserialize function (a k_state is sealed when flattened), and SSPACE as a fresh install
-- gives it (sql/k_aggregates.sql explains the figures). pg_depend follows (the aggregate's
-- normal dependencies on its support functions: pg_aggregate.c, AggregateCreate).
DO $$
DECLARE
  agg record;
  moves oid[];
  new_trans oid;
  new_final oid;
  new_combine oid := 'deident._k_combine(deident.k_state, deident.k_state)'::pg_catalog.regprocedure;
  k_state oid := 'deident.k_state'::pg_catalog.regtype;
  i int;
BEGIN
  FOR agg IN
    SELECT a.aggfnoid, p.proname, p.proargtypes, a.aggtransfn, a.aggfinalfn, a.aggcombinefn,
           a.aggserialfn, a.aggdeserialfn, t.proname AS trans_name, f.proname AS final_name
      FROM pg_catalog.pg_aggregate a
      JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) a.aggfnoid
      JOIN pg_catalog.pg_proc t ON t.oid OPERATOR(pg_catalog.=) a.aggtransfn
      JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) a.aggfinalfn
     WHERE p.pronamespace OPERATOR(pg_catalog.=) 'deident'::pg_catalog.regnamespace
       AND p.proname OPERATOR(pg_catalog.=) ANY ('{k_count,k_count_distinct,k_sum,k_avg}'::pg_catalog.name[])
  LOOP
    SELECT o.oid INTO STRICT new_trans FROM pg_catalog.pg_proc o
     WHERE o.pronamespace OPERATOR(pg_catalog.=) 'deident'::pg_catalog.regnamespace
       AND o.proname OPERATOR(pg_catalog.=) agg.trans_name
       AND o.proargtypes::pg_catalog.text OPERATOR(pg_catalog.=)
           pg_catalog.concat_ws(' ', k_state, agg.proargtypes);
    SELECT o.oid INTO STRICT new_final FROM pg_catalog.pg_proc o
     WHERE o.pronamespace OPERATOR(pg_catalog.=) 'deident'::pg_catalog.regnamespace
       AND o.proname OPERATOR(pg_catalog.=) agg.final_name
       AND o.proargtypes::pg_catalog.text OPERATOR(pg_catalog.=) k_state::pg_catalog.text;
    UPDATE pg_catalog.pg_aggregate
       SET aggtransfn = new_trans, aggfinalfn = new_final, aggcombinefn = new_combine,
           aggserialfn = 0, aggdeserialfn = 0, aggtranstype = k_state,
           aggtransspace = CASE
             WHEN agg.proname OPERATOR(pg_catalog.=) 'k_count_distinct' THEN 2112
             WHEN agg.proargtypes[0] OPERATOR(pg_catalog.=) 'pg_catalog.numeric'::pg_catalog.regtype THEN 544
             ELSE 448 END
     WHERE aggfnoid OPERATOR(pg_catalog.=) agg.aggfnoid;
    moves := ARRAY[agg.aggtransfn, new_trans, agg.aggfinalfn, new_final, agg.aggcombinefn, new_combine];
    FOR i IN 1..5 BY 2 LOOP
      UPDATE pg_catalog.pg_depend
         SET refobjid = moves[i OPERATOR(pg_catalog.+) 1]
       WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
         AND objid OPERATOR(pg_catalog.=) agg.aggfnoid
         AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
         AND refobjid OPERATOR(pg_catalog.=) moves[i];
    END LOOP;
    DELETE FROM pg_catalog.pg_depend
     WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND objid OPERATOR(pg_catalog.=) agg.aggfnoid
       AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND refobjid OPERATOR(pg_catalog.=) ANY (ARRAY[agg.aggserialfn, agg.aggdeserialfn]);
  END LOOP;
END $$;
DROP FUNCTION deident._k_trans(internal, "any", "any");
DROP FUNCTION deident._k_distinct_trans(internal, "any");
DROP FUNCTION deident._k_combine(internal, internal);
DROP FUNCTION deident._k_serial(internal);
DROP FUNCTION deident._k_deserial(bytea, internal);
DROP FUNCTION deident._k_count_trans(internal, "any");
DROP FUNCTION deident._k_count_final(internal);
DROP FUNCTION deident._k_distinct_final(internal);
DROP FUNCTION deident._k_sum_int8_final(internal);
DROP FUNCTION deident._k_sum_numeric_final(internal);
DROP FUNCTION deident._k_sum_float4_final(internal);
DROP FUNCTION deident._k_sum_float8_final(internal);
DROP FUNCTION deident._k_avg_numeric_final(internal);
DROP FUNCTION deident._k_avg_float8_final(internal);

-- 4b. Citus's worker_partial_agg for the k-aggregates, without its per-row lookups
-- (src/aggregates/partial.rs): when a query is planned, worker_partial_agg(k-aggregate,
-- arguments) becomes deident._k_partial(k-aggregate, arguments...), which runs the
-- k-aggregate's own transition function and renders the state as the type's output function
-- does (sealed, base64). Executable by everyone, as worker_partial_agg is: it checks that its
-- aggregate is a k-aggregate of these argument types that the caller may execute, and gives
-- nothing but the sealed state.
CREATE FUNCTION deident._k_partial_trans(internal, oid, "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_partial_trans';
CREATE FUNCTION deident._k_partial_trans(internal, oid, "any", "any")
  RETURNS internal LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_partial_trans';
CREATE FUNCTION deident._k_partial_final(internal) RETURNS cstring
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_partial_final';
-- The state is internal, a k_state object's pointer or a full state packed in the value
-- itself (src/aggregates/partial.rs, Packed); SSPACE is what the planner counts for a
-- k_state (its default width, 32, and two pointers), so that plans stay as they were.
CREATE AGGREGATE deident._k_partial(oid, "any") (SFUNC = deident._k_partial_trans,
  STYPE = internal, SSPACE = 48, FINALFUNC = deident._k_partial_final, PARALLEL = SAFE);
CREATE AGGREGATE deident._k_partial(oid, "any", "any") (SFUNC = deident._k_partial_trans,
  STYPE = internal, SSPACE = 48, FINALFUNC = deident._k_partial_final, PARALLEL = SAFE);
-- dp_sum and dp_avg: value, person and the two bounds
CREATE FUNCTION deident._k_partial_trans(internal, oid, "any", "any", "any", "any")
  RETURNS internal LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_partial_trans';
CREATE AGGREGATE deident._k_partial(oid, "any", "any", "any", "any") (
  SFUNC = deident._k_partial_trans, STYPE = internal, SSPACE = 48,
  FINALFUNC = deident._k_partial_final, PARALLEL = SAFE);

-- And Citus's coord_combine_agg for them on the coordinator (src/aggregates/partial.rs): in the
-- plan Citus makes, coord_combine_agg(k-aggregate, partial state text, NULL::result type)
-- becomes deident._k_combine_partials(...), which opens each partial state once and combines
-- it, then runs the k-aggregate's own final function, where k is checked. Executable by
-- everyone, as coord_combine_agg is; it checks what _k_partial checks, and that the type
-- argument is the aggregate's result type.
CREATE FUNCTION deident._k_combine_partials_trans(deident.k_state, oid, cstring, anyelement)
  RETURNS deident.k_state LANGUAGE c PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'deident_k_combine_partials_trans';
CREATE FUNCTION deident._k_combine_partials_final(deident.k_state, oid, cstring, anyelement)
  RETURNS anyelement LANGUAGE c PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'deident_k_combine_partials_final';
CREATE AGGREGATE deident._k_combine_partials(oid, cstring, anyelement) (
  SFUNC = deident._k_combine_partials_trans, STYPE = deident.k_state,
  FINALFUNC = deident._k_combine_partials_final, FINALFUNC_EXTRA,
  FINALFUNC_MODIFY = READ_WRITE, PARALLEL = SAFE);

-- 5. Differentially private aggregates and the privacy budget.
CREATE FUNCTION deident._privacy_budgets() RETURNS TABLE ("role" oid, "limit" double precision, "spent" double precision, "remaining" double precision)
STRICT VOLATILE PARALLEL SAFE LANGUAGE c
AS 'MODULE_PATHNAME', '_privacy_budgets_wrapper';
-- The differentially private aggregates (src/dp/) and the privacy budget. Declared by hand,
-- as the k-aggregates are. Their states are deident.k_state, so that Citus pushes them down
-- as it does the k-aggregates (their groups are admitted, noised and charged for on the
-- coordinator: docs/citus.md): dp_count runs k_count_distinct's transition and combine
-- functions, and only its final function differs; dp_sum's and dp_avg's states, each
-- person's total, are k_state's second family (sealed as kind 2: docs/sealed-states.md).
CREATE FUNCTION deident._dp_trans(deident.k_state, "any", "any", "any", "any")
  RETURNS deident.k_state LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_trans';
CREATE FUNCTION deident._dp_combine(deident.k_state, deident.k_state) RETURNS deident.k_state
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_combine';
-- The final functions are not STRICT: a group with no contributing row is still evaluated,
-- like any other (its statement was charged before it ran: src/dp/charge.rs). They are
-- VOLATILE (noise), which keeps the planner from folding or reusing them.
CREATE FUNCTION deident._dp_count_final(deident.k_state) RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_count_final';
CREATE FUNCTION deident._dp_sum_int8_final(deident.k_state) RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_sum_int8_final';
CREATE FUNCTION deident._dp_sum_numeric_final(deident.k_state) RETURNS numeric
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_sum_numeric_final';
CREATE FUNCTION deident._dp_sum_float8_final(deident.k_state) RETURNS double precision
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_sum_float8_final';
CREATE FUNCTION deident._dp_avg_numeric_final(deident.k_state) RETURNS numeric
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_avg_numeric_final';
CREATE FUNCTION deident._dp_avg_float8_final(deident.k_state) RETURNS double precision
  LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_dp_avg_float8_final';

DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::pg_catalog.regprocedure FROM pg_catalog.pg_proc
            WHERE pronamespace OPERATOR(pg_catalog.=) 'deident'::pg_catalog.regnamespace
              AND proname OPERATOR(pg_catalog.~~) '\_dp\_%'
  LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

-- One aggregate per person type (and value type), as for the k-aggregates. The bounds have
-- the value's type. Results: dp_count bigint; dp_sum bigint for integer values (SPEC), numeric
-- for numeric, double precision for real and double precision; dp_avg as avg: numeric for
-- integer and numeric values, double precision for real ones.
--
-- SSPACE: dp_count's state is k_count_distinct's (2048 for a group of about 100 persons);
-- dp_sum's is a table of 16-byte slots, 8/7 to 16/7 slots per distinct person, and a tail of
-- as many 16-byte rows as persons (about 4,000 bytes for 100 persons).
DO $$
DECLARE
  person text;
  v record;
  -- READ_WRITE also keeps them from being used as window functions (sql/k_aggregates.sql).
  common text := 'FINALFUNC_MODIFY = READ_WRITE, PARALLEL = SAFE';
  k_support text := 'SFUNC = deident._k_distinct_trans, COMBINEFUNC = deident._k_combine, '
                 || 'STYPE = deident.k_state';
  dp_support text := 'SFUNC = deident._dp_trans, COMBINEFUNC = deident._dp_combine, '
                  || 'STYPE = deident.k_state';
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE pg_catalog.format('CREATE AGGREGATE deident.dp_count(%s) (%s, FINALFUNC = deident._dp_count_final, '
                   'SSPACE = 2048, %s)', person, k_support, common);
    FOR v IN SELECT * FROM (VALUES
        ('smallint', '_dp_sum_int8_final', '_dp_avg_numeric_final'),
        ('integer', '_dp_sum_int8_final', '_dp_avg_numeric_final'),
        ('bigint', '_dp_sum_int8_final', '_dp_avg_numeric_final'),
        ('numeric', '_dp_sum_numeric_final', '_dp_avg_numeric_final'),
        ('real', '_dp_sum_float8_final', '_dp_avg_float8_final'),
        ('double precision', '_dp_sum_float8_final', '_dp_avg_float8_final'))
        AS t(value, sum_final, avg_final)
    LOOP
      EXECUTE pg_catalog.format('CREATE AGGREGATE deident.dp_sum(%1$s, %2$s, %1$s, %1$s) (%3$s, '
                     'FINALFUNC = deident.%4$I, SSPACE = 4096, %5$s)',
                     v.value, person, dp_support, v.sum_final, common);
      EXECUTE pg_catalog.format('CREATE AGGREGATE deident.dp_avg(%1$s, %2$s, %1$s, %1$s) (%3$s, '
                     'FINALFUNC = deident.%4$I, SSPACE = 4096, %5$s)',
                     v.value, person, dp_support, v.avg_final, common);
    END LOOP;
  END LOOP;
END $$;

-- The privacy budget (src/dp/budget.rs). set_privacy_budget checks that its caller is a
-- superuser; PUBLIC may not even call it.
CREATE FUNCTION deident.set_privacy_budget(role regrole, epsilon double precision) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'deident_set_privacy_budget';
REVOKE ALL ON FUNCTION deident.set_privacy_budget(regrole, double precision) FROM PUBLIC;
COMMENT ON FUNCTION deident.set_privacy_budget(regrole, double precision) IS
'sets the role''s privacy budget (total epsilon it may spend on dp aggregates); what it spent stays; not undone by ROLLBACK';

-- Each role sees its own account (and those of the roles whose privileges it has); a
-- superuser sees all.
CREATE VIEW deident.privacy_budget AS
  SELECT b.role::regrole AS role, b."limit", b.spent, b.remaining
    FROM deident._privacy_budgets() b;
GRANT SELECT ON deident.privacy_budget TO PUBLIC;
COMMENT ON VIEW deident.privacy_budget IS
'privacy budget per role: limit, spent (never goes down) and remaining epsilon';

COMMENT ON AGGREGATE deident.dp_count(text) IS
'noisy number of distinct persons (epsilon-DP, deident.dp_epsilon); NULL unless the group passes the release threshold';
