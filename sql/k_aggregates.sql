-- The k-anonymity-checked aggregates (src/aggregates/): their support functions, plain fmgr
-- functions of the library, and one CREATE AGGREGATE per person and value type. Declared by
-- hand rather than with #[pg_aggregate] (pgrx issue 2351: a wrong deserialize signature for
-- internal states).
CREATE FUNCTION deident._k_trans(internal, "any", "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_trans';
CREATE FUNCTION deident._k_count_trans(internal, "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_count_trans';
CREATE FUNCTION deident._k_distinct_trans(internal, "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_distinct_trans';
CREATE FUNCTION deident._k_combine(internal, internal) RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_combine';
CREATE FUNCTION deident._k_serial(internal) RETURNS bytea
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_serial';
CREATE FUNCTION deident._k_deserial(bytea, internal) RETURNS internal
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_deserial';
CREATE FUNCTION deident._k_count_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_count_final';
CREATE FUNCTION deident._k_distinct_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_distinct_final';
CREATE FUNCTION deident._k_sum_int8_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_int8_final';
CREATE FUNCTION deident._k_sum_numeric_final(internal) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_numeric_final';
CREATE FUNCTION deident._k_sum_float4_final(internal) RETURNS real
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float4_final';
CREATE FUNCTION deident._k_sum_float8_final(internal) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float8_final';
CREATE FUNCTION deident._k_avg_numeric_final(internal) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_numeric_final';
CREATE FUNCTION deident._k_avg_float8_final(internal) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_float8_final';

-- Support functions are for the aggregates alone.
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE pronamespace = 'deident'::regnamespace AND proname LIKE '\_k\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

-- One aggregate per person type (and value type): persons may be text, uuid, bigint or
-- integer; values the types PostgreSQL's sum and avg take, with the same result types.
--
-- SSPACE is the planner's estimate of one group's state, which it uses to choose between
-- hashing and sorting and to size a hash aggregate's batches (nodeAgg.c, hash_agg_set_limits).
-- The states are palloc'd in the aggregate's context (src/aggregates/memory.rs), where the
-- executor measures them, so these are their real sizes: about 270 bytes for the state in
-- its chunk, plus k = 5 person hashes for k_count, k_sum and k_avg (384), plus the decimal
-- limbs over numeric (480); for k_count_distinct, whose size grows with the group, a group
-- of about 100 persons (2048: the hash array holds at most twice the distinct persons, plus 16).
DO $$
DECLARE
  person text;
  v record;
  -- FINALFUNC_MODIFY = READ_WRITE also makes PostgreSQL refuse the aggregates as window
  -- functions (nodeWindowAgg.c): a running k_sum OVER (ORDER BY ...) would give away each
  -- person's value as the difference between neighbouring rows.
  common text := 'STYPE = internal, COMBINEFUNC = deident._k_combine, '
              || 'SERIALFUNC = deident._k_serial, DESERIALFUNC = deident._k_deserial, '
              || 'FINALFUNC_MODIFY = READ_WRITE, PARALLEL = SAFE';
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE format('CREATE AGGREGATE deident.k_count(%s) (SFUNC = deident._k_count_trans, '
                   'FINALFUNC = deident._k_count_final, SSPACE = 384, %s)', person, common);
    EXECUTE format('CREATE AGGREGATE deident.k_count_distinct(%s) (SFUNC = deident._k_distinct_trans, '
                   'FINALFUNC = deident._k_distinct_final, SSPACE = 2048, %s)', person, common);
    FOR v IN SELECT * FROM (VALUES
        ('smallint', '_k_sum_int8_final', '_k_avg_numeric_final', 384),
        ('integer', '_k_sum_int8_final', '_k_avg_numeric_final', 384),
        ('bigint', '_k_sum_numeric_final', '_k_avg_numeric_final', 384),
        ('numeric', '_k_sum_numeric_final', '_k_avg_numeric_final', 480),
        ('real', '_k_sum_float4_final', '_k_avg_float8_final', 384),
        ('double precision', '_k_sum_float8_final', '_k_avg_float8_final', 384))
        AS t(value, sum_final, avg_final, space)
    LOOP
      EXECUTE format('CREATE AGGREGATE deident.k_sum(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = %s, %s)', v.value, person, v.sum_final, v.space, common);
      EXECUTE format('CREATE AGGREGATE deident.k_avg(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = %s, %s)', v.value, person, v.avg_final, v.space, common);
    END LOOP;
  END LOOP;
END $$;
