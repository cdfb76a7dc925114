-- The demo's reports. Later capabilities add theirs here.
\set ON_ERROR_STOP 1
\pset footer off

\echo
\echo '== The people data, as stored: direct identifiers in the clear'
SELECT count(*) AS people, count(DISTINCT org) AS orgs, count(DISTINCT title) AS titles,
       count(DISTINCT region) AS regions FROM people;
\echo 'org x title combinations by size: the small ones point at individuals'
SELECT CASE WHEN n < 5 THEN '1-4 people' WHEN n < 20 THEN '5-19 people' ELSE '20+ people' END
         AS combination_size,
       count(*) AS combinations, sum(n) AS people
  FROM (SELECT org, title, count(*) AS n FROM people GROUP BY org, title) g
 GROUP BY 1 ORDER BY min(n);

\echo
\echo '== The de-identified people report (as in the seed): the person identifier is'
\echo '   deident.pseudonymize(email, length => 15), a keyed HMAC-SHA256 pseudonym; the key'
\echo '   stays in the server''s key file. Same person, same identifier; no way back to the e-mail.'
SELECT deident.key_fingerprint() AS active_key_fingerprint;
SELECT deident.pseudonymize(email, length => 15) AS "Person Identifier",
       after_hours AS "After Hours", email_hours AS "Email Hours",
       function AS "Function", title AS "Title", org AS "Org", region AS "Region"
  FROM people
 ORDER BY 1
 LIMIT 12;
