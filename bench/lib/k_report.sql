-- The k-aggregate benchmark's report (bench/k_aggregates.sql), for the current settings.
\echo
\echo 'k-aggregate benchmark, ':settings': 1,000,000 rows, 1,000 groups, 100,000 persons, median of interleaved runs'
SELECT query, runs, round(ms::numeric, 1) AS median_ms FROM bench_medians ORDER BY ord;
\echo 'ratios of medians (targets: k_sum/sum <= 1.25 over integer, <= 1.3 over numeric; k_count_distinct/count(DISTINCT) <= 0.30)'
WITH med AS (SELECT * FROM bench_medians)
SELECT round(((SELECT ms FROM med WHERE query = 'deident.k_sum(v, person)')
             / (SELECT ms FROM med WHERE query = 'sum(v)'))::numeric, 3) AS k_sum_vs_sum,
       round(((SELECT ms FROM med WHERE query = 'deident.k_sum(n, person)')
             / (SELECT ms FROM med WHERE query = 'sum(n)'))::numeric, 3) AS numeric_k_sum_vs_sum,
       round(((SELECT ms FROM med WHERE query = 'deident.k_count_distinct(person)')
             / (SELECT ms FROM med WHERE query = 'count(DISTINCT person)'))::numeric, 3)
         AS k_count_distinct_vs_count_distinct;
EXPLAIN (COSTS OFF) SELECT grp, deident.k_count_distinct(person) FROM bench_k GROUP BY grp;
EXPLAIN (COSTS OFF) SELECT grp, deident.k_sum(n, person) FROM bench_k GROUP BY grp;
EXPLAIN (COSTS OFF) SELECT grp, count(DISTINCT person) FROM bench_k GROUP BY grp;
