-- The dp benchmark's report (bench/dp.sql), for the current settings.
\echo
\echo 'dp benchmark, ':settings': 1,000,000 rows, 1,000 groups, 100,000 persons, median of interleaved runs'
SELECT query, runs, round(ms::numeric, 1) AS median_ms FROM bench_medians ORDER BY ord;
\echo 'ratios of medians (targets: dp_sum / two-level SQL <= 0.5; dp_count / count(DISTINCT) <= 0.5)'
WITH med AS (SELECT * FROM bench_medians)
SELECT round(((SELECT ms FROM med WHERE query = 'deident.dp_sum(v, person, 0, 5000)')
             / (SELECT ms FROM med WHERE query = 'two-level SQL sum'))::numeric, 3) AS dp_sum_vs_two_level,
       round(((SELECT ms FROM med WHERE query = 'deident.dp_sum, charged to a budget')
             / (SELECT ms FROM med WHERE query = 'two-level SQL sum'))::numeric, 3) AS charged_dp_sum_vs_two_level,
       round(((SELECT ms FROM med WHERE query = 'deident.dp_count(person)')
             / (SELECT ms FROM med WHERE query = 'count(DISTINCT person)'))::numeric, 3)
         AS dp_count_vs_count_distinct,
       round(((SELECT ms FROM med WHERE query = 'count(*), the floor')
             / (SELECT ms FROM med WHERE query = 'two-level SQL sum'))::numeric, 3) AS floor_vs_two_level;
EXPLAIN (COSTS OFF) SELECT grp, deident.dp_sum(v, person, 0, 5000) FROM bench_dp GROUP BY grp;
EXPLAIN (COSTS OFF) SELECT grp, sum(least(greatest(t, 0), 5000)) FROM (SELECT grp, person, sum(v) AS t FROM bench_dp GROUP BY grp, person) s GROUP BY grp;
