-- The k-anonymity-checked aggregates (src/aggregates/): their state type, their support
-- functions (plain fmgr functions of the library), and one CREATE AGGREGATE per person and
-- value type.
--
-- The state type, deident.k_state (src/aggregates/expanded.rs, docs/sealed-states.md): an
-- expanded object in memory between rows, sealed bytes whenever it is flattened, base64 of
-- them as text. A real type, not internal, so that Citus pushes partial aggregation to its
-- workers (they ship states as text through the type's I/O functions). Its input function
-- accepts only states sealed by a key of this server's ring; it is STABLE (it depends on the
-- ring), and so is the output function (a flattened state is sealed under another nonce each
-- time, which changes no answer). It holds the states of two families: the k-aggregates'
-- and dp_count's, and dp_sum's and dp_avg's (sql/dp.sql), told apart by their sealed kind.
CREATE TYPE deident.k_state;
CREATE FUNCTION deident._k_state_in(cstring) RETURNS deident.k_state
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_state_in';
CREATE FUNCTION deident._k_state_out(deident.k_state) RETURNS cstring
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_state_out';
-- STORAGE = external: the sealed bytes do not compress.
CREATE TYPE deident.k_state (
  INPUT = deident._k_state_in, OUTPUT = deident._k_state_out,
  INTERNALLENGTH = VARIABLE, STORAGE = external);
COMMENT ON TYPE deident.k_state IS
  'partial state of the k-anonymity-checked and differentially private aggregates: sealed whenever it leaves memory';

-- The transition functions, declared once per value and person type over one C function
-- each, which learns the types from the call or, when a caller gives no call expression
-- (Citus's worker_partial_agg), from this declaration.
DO $$
DECLARE
  person text;
  value text;
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE format('CREATE FUNCTION deident._k_count_trans(deident.k_state, %s) '
                   'RETURNS deident.k_state LANGUAGE c PARALLEL SAFE '
                   'AS ''MODULE_PATHNAME'', ''deident_k_count_trans''', person);
    EXECUTE format('CREATE FUNCTION deident._k_distinct_trans(deident.k_state, %s) '
                   'RETURNS deident.k_state LANGUAGE c PARALLEL SAFE '
                   'AS ''MODULE_PATHNAME'', ''deident_k_distinct_trans''', person);
    FOREACH value IN ARRAY ARRAY['smallint', 'integer', 'bigint', 'numeric', 'real',
                                 'double precision'] LOOP
      EXECUTE format('CREATE FUNCTION deident._k_trans(deident.k_state, %s, %s) '
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

-- Who may call the support functions: everyone. Citus checks the caller's EXECUTE privilege
-- on each support function of an aggregate it pushes down (aggregate_utils.c,
-- InitializeStypeBox), and each of them refuses to run outside an aggregate
-- (AggCheckCallContext), makes or answers nothing but what the aggregates would, and takes
-- only states sealed by this ring. The k check stays in the final functions.

-- One aggregate per person type (and value type): persons may be text, uuid, bigint or
-- integer; values the types PostgreSQL's sum and avg take, with the same result types.
--
-- SSPACE is the planner's estimate of one group's state, which it uses to choose between
-- hashing and sorting and to size a hash aggregate's batches (nodeAgg.c, hash_agg_set_limits).
-- The states are palloc'd in a context under the aggregate's (src/aggregates/expanded.rs),
-- where the executor measures them, so these are their real sizes: about 330 bytes for the
-- expanded object in its chunk, plus k = 5 person hashes for k_count, k_sum and k_avg (448),
-- plus the decimal limbs over numeric (544); for k_count_distinct, whose size grows with the
-- group, a group of about 100 persons (2112: the hash array holds at most twice the distinct
-- persons, plus 16).
DO $$
DECLARE
  person text;
  v record;
  -- FINALFUNC_MODIFY = READ_WRITE also makes PostgreSQL refuse the aggregates as window
  -- functions (nodeWindowAgg.c): a running k_sum OVER (ORDER BY ...) would give away each
  -- person's value as the difference between neighbouring rows.
  common text := 'STYPE = deident.k_state, COMBINEFUNC = deident._k_combine, '
              || 'FINALFUNC_MODIFY = READ_WRITE, PARALLEL = SAFE';
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE format('CREATE AGGREGATE deident.k_count(%s) (SFUNC = deident._k_count_trans, '
                   'FINALFUNC = deident._k_count_final, SSPACE = 448, %s)', person, common);
    EXECUTE format('CREATE AGGREGATE deident.k_count_distinct(%s) (SFUNC = deident._k_distinct_trans, '
                   'FINALFUNC = deident._k_distinct_final, SSPACE = 2112, %s)', person, common);
    FOR v IN SELECT * FROM (VALUES
        ('smallint', '_k_sum_int8_final', '_k_avg_numeric_final', 448),
        ('integer', '_k_sum_int8_final', '_k_avg_numeric_final', 448),
        ('bigint', '_k_sum_numeric_final', '_k_avg_numeric_final', 448),
        ('numeric', '_k_sum_numeric_final', '_k_avg_numeric_final', 544),
        ('real', '_k_sum_float4_final', '_k_avg_float8_final', 448),
        ('double precision', '_k_sum_float8_final', '_k_avg_float8_final', 448))
        AS t(value, sum_final, avg_final, space)
    LOOP
      EXECUTE format('CREATE AGGREGATE deident.k_sum(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = %s, %s)', v.value, person, v.sum_final, v.space, common);
      EXECUTE format('CREATE AGGREGATE deident.k_avg(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = %s, %s)', v.value, person, v.avg_final, v.space, common);
    END LOOP;
  END LOOP;
END $$;

-- Citus's worker_partial_agg for the k-aggregates, without its per-row lookups
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
