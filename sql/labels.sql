-- The labels as pg_deident reads them: deident._column_labels(rel) (src/labels.rs) gives a
-- column's effective label, the first, in the order identifier, quasi_identifier, sensitive
-- (what identifies outranks what is only protected), of its own and those of the same-named
-- column of its ancestors (partition parents and inheritance parents): a label on a parent
-- covers every child, attached now or later, a child's own label can add protection but not
-- remove it, and a detached child stops being covered. Looked up, not copied, so nothing can
-- fall out of step; the enforcement of restricted roles reads the same rules.
COMMENT ON FUNCTION deident._column_labels(oid) IS
'effective pg_deident label of each labelled column of a relation, its ancestors'' labels included';

-- One row per labelled column, for the relations the current user has any privilege on.
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
