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
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE pronamespace = 'deident'::regnamespace AND proname LIKE '\_dp\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
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
    EXECUTE format('CREATE AGGREGATE deident.dp_count(%s) (%s, FINALFUNC = deident._dp_count_final, '
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
      EXECUTE format('CREATE AGGREGATE deident.dp_sum(%1$s, %2$s, %1$s, %1$s) (%3$s, '
                     'FINALFUNC = deident.%4$I, SSPACE = 4096, %5$s)',
                     v.value, person, dp_support, v.sum_final, common);
      EXECUTE format('CREATE AGGREGATE deident.dp_avg(%1$s, %2$s, %1$s, %1$s) (%3$s, '
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
