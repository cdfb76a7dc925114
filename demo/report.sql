-- The demo's reports. Later capabilities add theirs here.
\set ON_ERROR_STOP 1
\pset footer off

-- k, the smallest group the k-aggregates answer for (deident.min_group_size), as :k
SELECT current_setting('deident.min_group_size')::int AS k \gset

\echo
\echo '== The people data, as stored: direct identifiers in the clear'
SELECT count(*) AS people, count(DISTINCT org) AS orgs, count(DISTINCT title) AS titles,
       count(DISTINCT region) AS regions FROM people;
\echo 'org x title combinations by size: the small ones point at individuals'
SELECT CASE WHEN n < :k THEN format('1-%s people', :k - 1)
            WHEN n < 20 THEN format('%s-19 people', :k) ELSE '20+ people' END AS combination_size,
       count(*) AS combinations, sum(n) AS people
  FROM (SELECT org, title, count(*) AS n FROM people GROUP BY org, title) g
 GROUP BY 1 ORDER BY min(n);

\echo
\echo '== What is personal data, as labelled in the catalog (SECURITY LABEL FOR deident):'
SELECT * FROM deident.personal_data ORDER BY schema_name, table_name, column_name;

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

\echo
\echo '== An aggregated report, k-anonymity-checked: average weekly hours by org and title.'
\echo '   deident.k_avg(value, person) answers only for groups of at least'
\echo '   deident.min_group_size distinct people (here' :k 'people; the default is 5, Workplace'
\echo '   Analytics'' default); smaller groups come out NULL. Shown: the orgs where small groups occur.'
SHOW deident.min_group_size;
SELECT org AS "Org", title AS "Title",
       deident.k_count_distinct(email) AS "People",
       round(deident.k_avg(after_hours, email), 1) AS "Avg After Hours",
       round(deident.k_avg(email_hours, email), 1) AS "Avg Email Hours",
       CASE WHEN deident.k_count(email) IS NULL
            THEN format('suppressed: fewer than %s people', current_setting('deident.min_group_size'))
            ELSE '' END AS "Note"
  FROM people
 WHERE org IN ('Legal – Privacy', 'Finance – Audit', 'HR – Talent')
 GROUP BY org, title
 ORDER BY org, min(CASE title WHEN 'Individual Contributor' THEN 1 WHEN 'Manager' THEN 2
                   WHEN 'Senior Manager' THEN 3 WHEN 'Director' THEN 4 ELSE 5 END);
\echo 'All org x title groups:'
SELECT count(*) AS groups,
       count(*) FILTER (WHERE answered) AS answered,
       count(*) FILTER (WHERE NOT answered) AS suppressed
  FROM (SELECT deident.k_count(email) IS NOT NULL AS answered FROM people GROUP BY org, title) g;

\echo
\echo '== How k-anonymous is the people table? Equivalence classes over the quasi-identifiers,'
\echo '   counted in distinct people (deident.k_anonymity); with no column arguments it takes'
\echo '   the labelled quasi-identifiers and the labelled identifier as the person:'
SELECT 'org, title' AS quasi_identifiers, *
  FROM deident.k_anonymity('people', ARRAY['org', 'title'], 'email')
UNION ALL
SELECT 'the labels: function, title, org, region', *
  FROM deident.k_anonymity('people');
\echo 'With all four attributes, many people are alone in their class: the seed''s point that'
\echo 'function, title, org and region are personal data in combination.'

\echo
\echo '== The analyst''s view. demo_analyst is a restricted role (SECURITY LABEL FOR deident ON'
\echo '   ROLE demo_analyst IS ''restricted''). It runs plain SQL on the same table, and every'
\echo '   value of the identifier column reaches it as that value''s pseudonym; nobody rewrote'
\echo '   the query. The same query, first as the DBA:'
SELECT email, function, title, org, after_hours FROM people ORDER BY org, title, after_hours, email_hours LIMIT 5;
SELECT min(email) AS known_email FROM people \gset
SET ROLE demo_analyst;
\echo '... then as demo_analyst:'
SELECT email, function, title, org, after_hours FROM people ORDER BY org, title, after_hours, email_hours LIMIT 5;
\echo 'The seed''s people report, as the analyst writes it (no pseudonymize call: the column'
\echo 'already reads as the pseudonym; the k-aggregates work on it as before):'
SELECT email AS "Person Identifier", after_hours AS "After Hours", email_hours AS "Email Hours",
       function AS "Function", title AS "Title", org AS "Org", region AS "Region"
  FROM people ORDER BY 1 LIMIT 5;
SELECT org AS "Org", deident.k_count_distinct(email) AS "People",
       round(deident.k_avg(after_hours, email), 1) AS "Avg After Hours"
  FROM people GROUP BY org ORDER BY org LIMIT 4;
\echo 'Looking up a known e-mail,' :known_email ', finds nothing (the predicate sees the'
\echo 'pseudonym), and the keyed function that would test a guess is refused:'
SELECT count(*) AS rows_with_that_email FROM people WHERE email = :'known_email';
\set ON_ERROR_STOP 0
SELECT deident.pseudonymize(:'known_email');
\set ON_ERROR_STOP 1
RESET ROLE;

\echo
\echo '== Differential privacy. The k-aggregates answer exactly, so two overlapping questions'
\echo '   give one person''s value back by subtraction. Suppose demo_analyst knows the victim''s'
\echo '   pseudonym (it sits next to her org and title in the people report). Her true value:'
SELECT org AS victim_org, after_hours AS victim_after_hours FROM people WHERE email = :'known_email' \gset
SELECT :'victim_org' AS "Org", :victim_after_hours AS "Her After Hours (the DBA sees it)";
SELECT deident.pseudonymize(:'known_email') AS victim \gset
SELECT deident.set_privacy_budget('demo_analyst', 15);
SET ROLE demo_analyst;
\echo 'The difference attack on the k-anonymous report (as demo_analyst): the org with and'
\echo 'without her, both groups far above k, so both are answered, exactly:'
SELECT deident.k_sum(after_hours, email) AS "Org total",
       deident.k_sum(after_hours, email) FILTER (WHERE email <> :'victim') AS "Org total without her",
       deident.k_sum(after_hours, email)
         - deident.k_sum(after_hours, email) FILTER (WHERE email <> :'victim') AS "Difference = her value"
  FROM people WHERE org = :'victim_org';
\echo 'The same with deident.dp_sum(after_hours, email, 0, 12): each person''s weekly total is'
\echo 'clamped to 0..12 (no one here works more), and noise of scale 12 / (epsilon / 2) = 48 hours is'
\echo 'added to each answer (deident.dp_epsilon = 0.5). The difference is noise, nothing about her.'
\echo 'Five tries, each a statement of two dp_sum calls, charged 2 x 0.5 of the budget of 15 before it runs:'
SELECT format($q$SELECT %s AS try, deident.dp_sum(after_hours, email, 0, 12) AS "Org total",
                    deident.dp_sum(after_hours, email, 0, 12) FILTER (WHERE email <> %L) AS "Org total without her",
                    deident.dp_sum(after_hours, email, 0, 12)
                      - deident.dp_sum(after_hours, email, 0, 12) FILTER (WHERE email <> %L) AS "Difference"
                 FROM people WHERE org = %L$q$, i, :'victim', :'victim', :'victim_org')
  FROM generate_series(1, 5) i \gexec
\echo 'The people report as a differentially private aggregate report, beside the k-anonymous one:'
\echo 'people and average after-hours per org, each group answered only if its noisy count of'
\echo 'people passes the release threshold (HAVING ... IS NOT NULL keeps unreleased groups out).'
\echo 'Averages are per person; both answers are noisy.'
SET deident.dp_epsilon = 0.25;
SELECT org AS "Org", deident.dp_count(email) AS "People (DP)",
       round(deident.dp_avg(after_hours, email, 0, 12), 1) AS "Avg After Hours (DP)",
       deident.k_count_distinct(email) AS "People (k)",
       round(deident.k_avg(after_hours, email), 1) AS "Avg After Hours (k)"
  FROM people GROUP BY org HAVING deident.dp_count(email) IS NOT NULL ORDER BY org;
RESET deident.dp_epsilon;
\echo 'What that cost, and what is left (charges are never refunded). The report cost 2 calls x 0.25,'
\echo 'whatever its number of groups: what a statement costs says nothing about the data.'
SELECT role, "limit", spent, remaining FROM deident.privacy_budget;
\echo 'A statement that would go past the budget is refused before it runs:'
SET deident.dp_epsilon = 10;
\set ON_ERROR_STOP 0
SELECT org, deident.dp_count(email) FROM people GROUP BY org;
\set ON_ERROR_STOP 1
RESET deident.dp_epsilon;
RESET ROLE;
