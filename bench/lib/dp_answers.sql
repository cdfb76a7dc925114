-- The dp aggregates' answers near the exact ones, included (\ir) by bench/dp.sql and
-- bench/citus.sql after `\set dp_table <table>` (columns grp, person, v; 1,000 groups of 100
-- persons). Every group is released (the thresholds are 28 and 54); the noise of dp_sum has
-- scale 5000/0.25 = 20,000 and that of dp_count 2, so the largest of 1,000 errors is below 12
-- scales (but once in 160 runs). The dp answers go to a table first: a statement with dp
-- aggregates may read a table with an identifier column only as their persons' table.
CREATE TEMP TABLE bench_dp_answers AS
  SELECT grp, deident.dp_sum(v, person, 0, 5000) AS s, deident.dp_count(person) AS d
    FROM :dp_table GROUP BY grp;
SELECT count(*) AS groups, count(b.s) AS released,
       max(abs(a.s - b.s)) < 12 * 20000 AS sum_within_noise,
       max(abs(a.d - b.d)) < 12 * 2 AS count_within_noise
  FROM (SELECT grp, sum(least(greatest(t, 0), 5000)) AS s, count(*) AS d
          FROM (SELECT grp, person, sum(v) AS t FROM :dp_table GROUP BY grp, person) x GROUP BY grp) a
  JOIN bench_dp_answers b USING (grp);
DROP TABLE bench_dp_answers;
