-- What pg_deident put in the catalog of this database, one row per object and property set,
-- so that two databases can be compared line by line (tests/upgrade.sh): every member of the
-- extension (functions with their properties, aggregates with their support functions,
-- relations with their columns and view definitions, types, anything else by description),
-- their owners, privileges, initial privileges and comments, column collations, what they
-- depend on, the schema, and the extension row.
WITH members AS (
  SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
   WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'pg_deident' AND d.deptype = 'e'
)
SELECT kind, identity, replace(detail, E'\n', E'\\n') AS detail FROM (
  SELECT 'function' AS kind, p.oid::regprocedure::text AS identity,
         concat_ws(' | ', pg_get_function_result(p.oid), pg_get_function_arguments(p.oid), p.prokind,
                   pg_get_userbyid(p.proowner),
                   p.provolatile, p.proparallel, p.proisstrict, p.prosecdef, p.proleakproof, p.procost,
                   p.prorows, (SELECT lanname FROM pg_language WHERE oid = p.prolang), p.prosrc, p.probin, array_to_string(p.proconfig, ','),
                   p.proacl::text, obj_description(p.oid, 'pg_proc'),
                   (SELECT concat_ws(',', a.aggkind, a.aggnumdirectargs, a.aggtransfn::regprocedure,
                                     a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn,
                                     a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn, a.aggfinalextra,
                                     a.aggmfinalextra, a.aggfinalmodify, a.aggmfinalmodify, a.aggsortop,
                                     a.aggtranstype::regtype, a.aggtransspace, a.agginitval)
                      FROM pg_aggregate a WHERE a.aggfnoid = p.oid)) AS detail
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT 'relation', c.oid::regclass::text,
         concat_ws(' | ', c.relkind, pg_get_userbyid(c.relowner), c.relacl::text, obj_description(c.oid, 'pg_class'),
                   CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END,
                   array_to_string(c.reloptions, ','),
                   (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                      || CASE WHEN a.attcollation <> 0 THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
                                      || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                      || coalesce(' ' || a.attacl::text, '')
                                      || coalesce(' ' || col_description(c.oid, a.attnum), ''), ', '
                                      ORDER BY a.attnum)
                      FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
  UNION ALL
  SELECT 'type', t.oid::regtype::text,
         concat_ws(' | ', t.typtype, pg_get_userbyid(t.typowner), t.typinput, t.typoutput, t.typacl::text, obj_description(t.oid, 'pg_type'))
    FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
  UNION ALL
  SELECT 'other', pg_describe_object(m.classid, m.objid, 0), ''
    FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass)
  UNION ALL
  -- what each member depends on besides the extension (an aggregate on its support functions,
  -- a type on its I/O functions, everything on the schema)
  SELECT 'dependency', pg_describe_object(d.classid, d.objid, d.objsubid),
         d.deptype::text || ' on ' || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
    FROM pg_depend d JOIN members m ON m.classid = d.classid AND m.objid = d.objid
   WHERE d.deptype <> 'e'
  UNION ALL
  SELECT 'initial privileges', pg_describe_object(i.classoid, i.objoid, i.objsubid),
         i.privtype::text || ' ' || i.initprivs::text
    FROM pg_init_privs i JOIN members m ON m.classid = i.classoid AND m.objid = i.objoid
  UNION ALL
  SELECT 'schema', n.nspname, concat_ws(' | ', pg_get_userbyid(n.nspowner), n.nspacl::text,
                                        obj_description(n.oid, 'pg_namespace'))
    FROM pg_namespace n WHERE n.nspname = 'deident'
  UNION ALL
  SELECT 'extension', e.extname, concat_ws(' | ', e.extversion, e.extrelocatable,
                                           e.extnamespace::regnamespace, e.extconfig::text)
    FROM pg_extension e WHERE e.extname = 'pg_deident'
) x ORDER BY 1, 2, 3;
