-- deident.k_anonymity(rel, quasi_identifiers, person): how k-anonymous is a table?
-- The equivalence classes are the groups of rows with equal quasi-identifier values (NULL
-- equal to NULL, as GROUP BY has it); each is measured in distinct non-NULL persons, or in
-- rows when no person column is given or labelled. Without arguments, the columns come from
-- the labels (sql/labels.sql). Runs with the caller's rights: it reads the
-- table as the caller could. Column names are quoted (format %I), never spliced.
CREATE FUNCTION deident.k_anonymity(
    rel regclass,
    quasi_identifiers text[] DEFAULT NULL,
    person text DEFAULT NULL,
    OUT k bigint,
    OUT classes bigint,
    OUT classes_below_min bigint,
    OUT persons_below_min bigint)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  qi text[] := quasi_identifiers;
  who text := person;
  kmin int := current_setting('deident.min_group_size')::int;
  col text;
  cols text;
  sql text;
  n_identifiers bigint;
BEGIN
  IF rel IS NULL THEN
    RAISE EXCEPTION 'relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  -- Defaults from the labels (deident.personal_data): the quasi_identifier columns, and the
  -- identifier column as the person (none: each row is a person; several: ambiguous).
  IF qi IS NULL THEN
    SELECT array_agg(l.column_name::text ORDER BY l.attnum) INTO qi
      FROM deident._column_labels(rel) l WHERE l.label = 'quasi_identifier';
  END IF;
  IF who IS NULL AND person IS NULL THEN
    SELECT min(l.column_name::text), count(*) INTO who, n_identifiers
      FROM deident._column_labels(rel) l WHERE l.label = 'identifier';
    IF n_identifiers > 1 THEN
      RAISE EXCEPTION 'relation "%" has % columns labelled identifier', rel, n_identifiers
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Name the person column: person => ''column''.';
    END IF;
  END IF;
  IF qi IS NULL OR cardinality(qi) = 0 THEN
    RAISE EXCEPTION 'relation "%" has no quasi-identifiers', rel
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass them as quasi_identifiers => ARRAY[''column'', ...], or label columns: SECURITY LABEL FOR deident ON COLUMN t.c IS ''quasi_identifier''.';
  END IF;
  IF array_position(qi, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'quasi-identifier column names must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  FOREACH col IN ARRAY qi || CASE WHEN who IS NULL THEN '{}'::text[] ELSE ARRAY[who] END LOOP
    IF NOT EXISTS (SELECT FROM pg_attribute
                                   WHERE attrelid = rel AND attname = col
                                     AND attnum > 0 AND NOT attisdropped) THEN
      RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, rel
        USING ERRCODE = 'undefined_column';
    END IF;
  END LOOP;
  IF cardinality(qi) <> (SELECT count(DISTINCT c) FROM unnest(qi) c) THEN
    RAISE EXCEPTION 'quasi-identifiers must not repeat a column' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF 'deident person' = ANY (qi) THEN
    RAISE EXCEPTION 'a quasi-identifier column must not be named "deident person"'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Evaluate a view that renames it.';
  END IF;

  SELECT string_agg(format('%I', c), ', ' ORDER BY o) INTO cols
    FROM unnest(qi) WITH ORDINALITY AS u(c, o);

  IF who IS NULL THEN
    -- each row is a person
    sql := format($q$
      WITH c AS (SELECT count(*) AS n FROM %1$s GROUP BY %2$s)
      SELECT min(n), count(*), count(*) FILTER (WHERE n < $1),
             coalesce(sum(n) FILTER (WHERE n < $1), 0)::bigint
        FROM c$q$, rel, cols);
  ELSE
    -- One (class, person) row per person in each class, then each class's size by a window
    -- over the class: grouping and partitioning treat NULLs alike and use the columns' own
    -- equality, and no join back to the table is needed.
    -- The person travels under an alias no quasi-identifier may share (checked above).
    sql := format($q$
      WITH cp AS (SELECT %2$s, %3$I AS "deident person" FROM %1$s
                   WHERE %3$I IS NOT NULL GROUP BY %2$s, %3$I),
           cn AS (SELECT "deident person" AS p, count(*) OVER w AS n, row_number() OVER w AS first
                    FROM cp WINDOW w AS (PARTITION BY %2$s))
      SELECT min(n), count(*) FILTER (WHERE first = 1),
             count(*) FILTER (WHERE first = 1 AND n < $1),
             count(DISTINCT p) FILTER (WHERE n < $1)
        FROM cn$q$, rel, cols, who);
  END IF;
  EXECUTE sql INTO k, classes, classes_below_min, persons_below_min USING kmin;
END
$fn$;
COMMENT ON FUNCTION deident.k_anonymity(regclass, text[], text) IS
'k-anonymity of a table: the smallest equivalence class over the quasi-identifiers, in distinct persons';
