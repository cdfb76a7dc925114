-- The labels as pg_deident reads them. A column's label is the first, in the order
-- identifier, quasi_identifier, sensitive (a policy: what identifies outranks what is only
-- protected), of its own and those of the same-named column of its
-- ancestors in a partition tree: a label on a partitioned table covers every partition,
-- attached now or later, a partition's own label can add protection but not remove it, and
-- a detached partition stops being covered. Looked up, not copied, so nothing can fall out of step. Labels are reported in
-- their canonical lower case, whatever case they were set in. Readable by everyone, as
-- pg_seclabel itself is.
CREATE FUNCTION deident._column_labels(rel regclass)
RETURNS TABLE (column_name name, attnum smallint, label text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT a.attname, a.attnum, l.label
    FROM pg_attribute a
    CROSS JOIN LATERAL (
      SELECT lower(s.label) AS label
        FROM (SELECT rel::oid AS relid, 0::bigint AS depth
              UNION ALL
              SELECT p.relid, p.depth FROM pg_partition_ancestors(rel) WITH ORDINALITY AS p(relid, depth)) anc
        JOIN pg_attribute pa ON pa.attrelid = anc.relid AND pa.attname = a.attname AND NOT pa.attisdropped
        JOIN pg_seclabel s ON s.objoid = anc.relid AND s.classoid = 'pg_class'::regclass
                          AND s.objsubid = pa.attnum AND s.provider = 'deident'
       ORDER BY array_position(ARRAY['identifier', 'quasi_identifier', 'sensitive'], lower(s.label)),
                anc.depth
       LIMIT 1) l
   WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- One row per labelled column, for the relations the current user has any privilege on.
CREATE VIEW deident.personal_data AS
SELECT n.nspname AS schema_name, c.relname AS table_name, l.column_name, l.label
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL deident._column_labels(c.oid) l
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
   AND (c.relispartition
        OR EXISTS (SELECT FROM pg_seclabel s
                    WHERE s.objoid = c.oid AND s.classoid = 'pg_class'::regclass
                      AND s.provider = 'deident'))
   AND has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES');
COMMENT ON VIEW deident.personal_data IS
'columns labelled as personal data (SECURITY LABEL FOR deident), partitions included';
GRANT SELECT ON deident.personal_data TO PUBLIC;
