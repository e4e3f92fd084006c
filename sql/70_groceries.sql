-- Post-purchase over real customers and dates: the Kaggle groceries dataset
-- (3,898 members, 2014-2015; a basket is member + date).  Invariants, and the
-- interval statistics against a plain-SQL reference over all 34,766
-- (member, item) pairs.
\set VERBOSITY terse
SET TimeZone = 'UTC';
SET client_min_messages = warning;
\i scripts/load_groceries_members.sql
SELECT upsell.register_orders('groceries_members.lines', 'order_id', 'item_id',
	customer_id => 'member', ordered_at => 'day');
SELECT upsell.register_products('groceries_members.items', 'item_id', category => 'category', title => 'name');
CALL upsell.refresh();
RESET client_min_messages;

SELECT count(*) AS lines, count(DISTINCT member) AS members, count(DISTINCT order_id) AS baskets,
	   count(DISTINCT item_id) AS items
FROM groceries_members.lines;

-- the C aggregate agrees with percentile_cont / stddev_samp on every pair
WITH buys AS (SELECT DISTINCT member, item_id, day::timestamptz AS t FROM groceries_members.lines),
gaps AS (
	SELECT member, item_id,
		   extract(epoch FROM t - lag(t) OVER (PARTITION BY member, item_id ORDER BY t)) / 86400 AS gap
	FROM buys),
ref AS (
	SELECT member, item_id, count(*) AS purchases,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median,
		   stddev_samp(gap) / avg(gap) AS cv
	FROM gaps GROUP BY member, item_id)
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE r.purchases = m.purchases
			AND r.median IS NOT DISTINCT FROM m.median_gap_days
			AND round(r.cv::numeric, 9) IS NOT DISTINCT FROM round(m.cv::numeric, 9)) AS agree,
	   count(*) FILTER (WHERE m.purchases >= 2) AS repeat_pairs
FROM ref r FULL JOIN upsell.purchase_interval_model m
	ON m.customer_id = r.member AND m.product_id = r.item_id;

-- population interval = median of the repeat buyers' medians
SELECT count(*) AS products,
	   count(*) FILTER (WHERE p.population_interval_days IS NOT DISTINCT FROM r.days) AS agree
FROM upsell.product_interval_model p
LEFT JOIN (SELECT product_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY median_gap_days) AS days
		   FROM upsell.purchase_interval_model WHERE purchases >= 2 GROUP BY product_id) r USING (product_id);

-- due dates come after the last purchase, by the interval used
SELECT count(*) FILTER (WHERE next_due IS NOT NULL) AS with_due_date,
	   count(*) FILTER (WHERE next_due <= last_at) AS due_not_after_last,
	   count(*) FILTER (WHERE next_due <> last_at + interval_days * interval '1 day') AS wrong_due,
	   count(*) FILTER (WHERE confidence < 0 OR confidence > 1) AS confidence_out_of_range
FROM upsell.purchase_interval_model;

-- consumables by the data, and the most rebought items
SELECT repeats_consumable, count(*) FROM upsell.product_interval_model GROUP BY 1 ORDER BY 1;
SELECT i.name, s.customers, s.repeat_customers, round(s.repeat_share::numeric, 3) AS repeat_share,
	   s.regular_customers, round(s.population_interval_days::numeric, 1) AS population_interval
FROM upsell.subscription_products(300) s JOIN groceries_members.items i ON i.item_id = s.product_id
ORDER BY s.repeat_share DESC, i.name LIMIT 5;

-- replenishment: every row in the window, consumable, in stock
SELECT count(*) AS due, min(next_due)::date AS first, max(next_due)::date AS last,
	   bool_and(upsell.is_consumable(product_id)) AS all_consumable,
	   count(DISTINCT customer_id) AS customers
FROM upsell.replenishment_due('2016-01-01', '14 days');

-- subscriptions: bought 3+ times, CV < 0.5, as many as the model says
SELECT count(*) AS candidates, bool_and(purchases >= 3 AND cv < 0.5) AS all_regular,
	   (SELECT count(*) FROM upsell.purchase_interval_model WHERE purchases >= 3 AND cv < 0.5) AS in_model
FROM upsell.subscription_candidates();

-- recommendations for 300 members: k slots filled, ranks 1..k, no owned durable,
-- no owned consumable unless due, no repeats
CREATE TEMP TABLE recs AS
SELECT c.member, r.*
FROM (SELECT DISTINCT member FROM groceries_members.lines ORDER BY member LIMIT 300) c,
	 upsell.recommend_for_customer(c.member, 5, at => '2016-01-01') r;
SELECT count(*) AS offers, count(DISTINCT member) AS members,
	   count(*) FILTER (WHERE rank NOT BETWEEN 1 AND 5) AS bad_rank,
	   count(DISTINCT (member, product_id)) = count(*) AS no_repeats
FROM recs;
SELECT count(*) FILTER (WHERE NOT upsell.is_consumable(r.product_id)) AS owned_durables_offered,
	   count(*) FILTER (WHERE upsell.is_consumable(r.product_id)
						AND m.next_due > timestamptz '2016-01-01' + interval '7 days') AS consumables_not_due,
	   count(*) FILTER (WHERE upsell.is_consumable(r.product_id)) AS owned_consumables_offered
FROM recs r
JOIN upsell.purchase_interval_model m ON m.customer_id = r.member AND m.product_id = r.product_id;
-- the rule has something to block: complements that are owned durables
-- (statistics of the models as refreshed: purchase_interval_model is a view
-- over per-customer arrays, and stale estimates make a nested loop of it)
ANALYZE upsell.purchase_history_model, upsell.pair_list_model;
SELECT count(*) > 0 AS durables_were_candidates
FROM upsell.purchase_interval_model o
JOIN upsell.pair_model p ON p.product_id = o.product_id
JOIN upsell.purchase_interval_model d ON d.customer_id = o.customer_id AND d.product_id = p.other_id
WHERE o.customer_id IN (SELECT DISTINCT member FROM recs) AND NOT upsell.is_consumable(d.product_id);
SELECT split_part(reason, ':', 1) AS reason, count(*) FROM recs GROUP BY 1 ORDER BY count(*) DESC, 1;

-- email sequences for 200 members: 5 steps, distinct products, no two of a
-- category in a row, a reason naming a purchase for every personal offer
CREATE TEMP TABLE seqs AS
SELECT c.member, e.*, lag(e.category) OVER (PARTITION BY c.member ORDER BY e.step) AS prev
FROM (SELECT DISTINCT member FROM groceries_members.lines ORDER BY member LIMIT 200) c,
	 upsell.email_sequence(c.member, 5, at => '2016-01-01') e;
SELECT count(*) AS offers, count(DISTINCT member) AS members,
	   count(DISTINCT (member, product_id)) = count(*) AS distinct_products,
	   count(*) FILTER (WHERE category = prev) AS same_category_in_a_row,
	   count(*) FILTER (WHERE kind <> 'popular' AND (refers_to IS NULL OR reason NOT LIKE '%bought%')) AS unexplained
FROM seqs;
SELECT kind, count(*) FROM seqs GROUP BY kind ORDER BY count(*) DESC, kind;
-- a personal offer refers to a product the member bought
SELECT count(*) AS refers_to_unowned
FROM seqs s
WHERE s.refers_to IS NOT NULL AND NOT EXISTS (
	SELECT FROM groceries_members.lines l WHERE l.member = s.member AND l.item_id = s.refers_to);
-- one member's sequence, readable
SELECT e.step, e.kind, i.name, e.category, e.reason
FROM upsell.email_sequence(1808, 5, at => '2016-01-01') e
JOIN groceries_members.items i ON i.item_id = e.product_id
ORDER BY step;

-- pair_model's lift, computed in the view from the counts, is the counting
-- core's lift of every pair, to the last bit
SELECT count(*) AS pairs,
	   count(*) FILTER (WHERE p.lift IS DISTINCT FROM c.lift) AS lift_differs,
	   count(*) FILTER (WHERE p.lift > 1) AS above_chance
FROM upsell.pair_model p
LEFT JOIN (SELECT x.product_id, x.other_id, x.lift
		   FROM upsell.cooccurrence_chunks m, upsell.cooccurrence_pairs(m.state, 1, 0, 0) x) c
	ON c.product_id = p.product_id AND c.other_id = p.other_id;

-- An incremental refresh folds the new lines of customers into their
-- stored histories (_purchase_history_fold): the same rows as the pass over
-- every line of those customers.  The lines of July 2015 on are new, and so
-- are those of every seventh member before March 2014 (late lines, earlier
-- than the ones counted); members with new lines only are new customers;
-- the lines of every fifth item have no price.  In whole days (the dates),
-- and in instants (an hour of the day from the basket).
CREATE TEMP TABLE fold_lines AS
SELECT 0::bigint AS tenant_id, l.member AS customer_id, l.item_id AS product_id, l.day, l.order_id,
	   (1 + l.order_id % 3)::numeric AS quantity,
	   CASE WHEN l.item_id % 5 <> 0 THEN (1 + l.order_id % 3) * 1.25 END AS spend,
	   l.day >= '2015-07-01' OR (l.member % 7 = 0 AND l.day < '2014-03-01') AS new
FROM groceries_members.lines l;
CREATE FUNCTION pg_temp.fold_query(lines text, instants boolean) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT tenant_id, customer_id, product_id, %s, quantity, spend FROM fold_lines WHERE %s '
				  'ORDER BY tenant_id, customer_id',
				  CASE WHEN instants THEN '(day + (order_id % 5) * interval ''1 hour'')::timestamptz'
					   ELSE 'day::timestamptz' END, lines) $$;
CREATE TEMP TABLE fold_check (instants boolean, folded bigint, new_customers bigint,
							  with_instants_between bigint, differing bigint, taken_out bigint,
							  taken_out_differing bigint);
DO $$
DECLARE
	instants boolean;
	changed text := 'customer_id IN (SELECT f.customer_id FROM fold_lines f WHERE f.new)';
BEGIN
	FOREACH instants IN ARRAY ARRAY[false, true] LOOP
		CREATE TEMP TABLE stored AS
		SELECT * FROM upsell._purchase_history(pg_temp.fold_query('NOT new', instants), NOT instants)
		WHERE product_id IS NULL;
		CREATE TEMP TABLE folded AS
		SELECT * FROM upsell._purchase_history_fold(
			'SELECT tenant_id, customer_id, product_ids, purchases, first_at, last_at, between_at, '
			'median_gap_days, cv, quantity, spend FROM stored WHERE ' || changed || ' ORDER BY customer_id',
			pg_temp.fold_query('new', instants), NOT instants);
		CREATE TEMP TABLE every_line AS
		SELECT * FROM upsell._purchase_history(pg_temp.fold_query(changed, instants), NOT instants);
		-- what the stored histories of those customers contributed, in SQL
		CREATE TEMP TABLE taken_in_sql AS
		SELECT u.product_id, count(*) AS customers, count(*) FILTER (WHERE u.purchases >= 2) AS repeaters,
			   count(*) FILTER (WHERE u.purchases >= 3 AND u.cv < 0.5) AS regulars,
			   coalesce(array_agg(u.median_gap_days ORDER BY u.median_gap_days)
						FILTER (WHERE u.purchases >= 2), '{}')::text AS gaps
		FROM stored h,
			 unnest(h.product_ids, h.purchases, h.median_gap_days, h.cv) u(product_id, purchases, median_gap_days, cv)
		WHERE h.customer_id IN (SELECT f.customer_id FROM fold_lines f WHERE f.new)
		GROUP BY u.product_id;
		INSERT INTO fold_check
		SELECT instants, (SELECT count(*) FROM folded WHERE product_id IS NULL),
			   (SELECT count(*) FROM folded f WHERE f.product_id IS NULL
				AND NOT EXISTS (SELECT FROM stored s WHERE s.customer_id = f.customer_id)),
			   (SELECT count(*) FROM stored s WHERE cardinality(s.between_at) > 0 AND s.customer_id IN (
					SELECT f.customer_id FROM fold_lines f WHERE f.new)),
			   (SELECT count(*) FROM ((SELECT f::text FROM folded f WHERE NOT f.taken_out
									   EXCEPT ALL SELECT e::text FROM every_line e)
									  UNION ALL (SELECT e::text FROM every_line e
												 EXCEPT ALL SELECT f::text FROM folded f WHERE NOT f.taken_out)) d),
			   (SELECT count(*) FROM folded f WHERE f.taken_out),
			   (SELECT count(*) FROM (
					(SELECT f.product_id, f.customers, f.repeat_customers, f.regular_customers, f.repeat_gaps::text
					 FROM folded f WHERE f.taken_out
					 EXCEPT ALL SELECT * FROM taken_in_sql)
					UNION ALL
					(SELECT * FROM taken_in_sql
					 EXCEPT ALL SELECT f.product_id, f.customers, f.repeat_customers, f.regular_customers,
									   f.repeat_gaps::text
					 FROM folded f WHERE f.taken_out)) d);
		DROP TABLE taken_in_sql;
		DROP TABLE stored, folded, every_line;
	END LOOP;
END $$;
SELECT * FROM fold_check ORDER BY instants;
-- a stored history whose instants do not add up, or a query of other
-- columns: a clear error
SELECT * FROM upsell._purchase_history_fold($q$SELECT 0::bigint, 1::bigint, '{5}'::bigint[], '{3}'::int[],
	'{2024-01-01}'::timestamptz[], '{2024-03-01}'::timestamptz[], '{}'::timestamptz[], '{30}'::float8[],
	'{0.1}'::float8[], '{3}'::numeric[], '{NULL}'::numeric[]$q$, pg_temp.fold_query('false', false), false);
SELECT * FROM upsell._purchase_history_fold('SELECT 1', pg_temp.fold_query('false', false), false);

-- Bundles that outgrow upsell.itemsets_memory_limit are mined at a raised
-- count (4 times, until they fit), and source_state's settings say at which
-- count and under which limit the bundles were mined ("bundles").  A refresh
-- without new lines mines them again when the same lines would now give
-- others (a lower limit than the configured count fitted in, another limit
-- than a raised count fitted in), as a full refresh would, and keeps them
-- otherwise.
CREATE TEMP TABLE bundles_full AS SELECT * FROM upsell.bundle_model;
CREATE TEMP TABLE pages_full AS SELECT * FROM upsell.product_page_model;
SELECT s.settings -> 'bundles' ->> 'min_count' AS mined_at FROM upsell.source_state s;
SET client_min_messages = warning;
SET upsell.itemsets_memory_limit = '1540kB';
CALL upsell.refresh(incremental => true);
SELECT s.mode, s.new_lines, s.settings -> 'bundles' AS bundles,
	   (SELECT count(*) FROM upsell.bundle_model) AS bundle_rows, (SELECT min(b.count) FROM upsell.bundle_model b) AS least_count,
	   (SELECT count(*) FROM bundles_full) AS rows_at_5, (SELECT min(b.count) FROM bundles_full b) AS least_at_5,
	   (SELECT count(*) FROM (TABLE pages_full EXCEPT ALL TABLE upsell.product_page_model) d) AS pages_not_as_at_5
FROM upsell.source_state s;
CREATE TEMP TABLE bundles_raised AS SELECT * FROM upsell.bundle_model;
CREATE TEMP TABLE pages_raised AS SELECT * FROM upsell.product_page_model;
-- the same as a full refresh under that limit, and kept as they are by the
-- next refresh without new lines
CALL upsell.refresh();
SELECT (SELECT count(*) FROM (TABLE upsell.bundle_model EXCEPT ALL TABLE bundles_raised) d)
	   + (SELECT count(*) FROM (TABLE bundles_raised EXCEPT ALL TABLE upsell.bundle_model) d)
	   + (SELECT count(*) FROM (TABLE upsell.product_page_model EXCEPT ALL TABLE pages_raised) d)
	   + (SELECT count(*) FROM (TABLE pages_raised EXCEPT ALL TABLE upsell.product_page_model) d)
		   AS differing_from_full;
-- (kept, not mined again to the same rows: the same row versions, written
-- by the full refresh's transaction)
CREATE TEMP TABLE bundles_versions AS SELECT b.ctid AS row_ctid, b.xmin::text AS row_xmin FROM upsell.bundle_list_model b;
CALL upsell.refresh(incremental => true);
SELECT s.mode, s.new_lines, s.settings -> 'bundles' AS bundles,
	   (SELECT count(*) FROM (TABLE upsell.bundle_model EXCEPT ALL TABLE bundles_raised) d)
	   + (SELECT count(*) FROM (TABLE bundles_raised EXCEPT ALL TABLE upsell.bundle_model) d) AS differing,
	   (SELECT count(*) FROM upsell.bundle_list_model b
		WHERE NOT EXISTS (SELECT FROM bundles_versions v WHERE v.row_ctid = b.ctid AND v.row_xmin = b.xmin::text)) AS rows_written
FROM upsell.source_state s;
RESET upsell.itemsets_memory_limit;
CALL upsell.refresh(incremental => true);
RESET client_min_messages;
-- (the product pages, which show the bundles, follow them: the offers as
-- served, the bundles joined to the lists)
SELECT s.mode, s.reason, s.new_lines, s.settings -> 'bundles' ->> 'min_count' AS mined_at,
	   (SELECT count(*) FROM (TABLE upsell.bundle_model EXCEPT ALL TABLE bundles_full) d)
	   + (SELECT count(*) FROM (TABLE bundles_full EXCEPT ALL TABLE upsell.bundle_model) d) AS differing_from_full,
	   (SELECT count(*) FROM (TABLE upsell.product_page_model EXCEPT ALL TABLE pages_full) d)
	   + (SELECT count(*) FROM (TABLE pages_full EXCEPT ALL TABLE upsell.product_page_model) d)
		   AS pages_differing_from_full
FROM upsell.source_state s;

-- The page's offers as served are the 12 best of its stored complements and
-- upgrades and its bundles with every item in stock, by the page's rule:
-- sort = score / the best score of its kind, then by sort descending, the
-- products offered and the kind (no bundle is the same set of products as
-- another offer: it holds the product itself).  Here in SQL, against the
-- view, over every product of the shop.
CREATE TEMP TABLE page_reference AS
WITH offers AS (
	SELECT l.tenant_id, l.product_id, o.offer_type,
		   l.product_ids[coalesce(l.offer_ends[o.n - 1], 0) + 1 : o.offer_end] AS product_ids, o.score
	FROM upsell.product_page_list_model l,
		 unnest(l.offer_types, l.offer_ends, l.scores) WITH ORDINALITY o(offer_type, offer_end, score, n)
	UNION ALL
	SELECT b.tenant_id, b.product_id, 'bundle', b.items, b.lift
	FROM upsell.bundle_model b
	WHERE NOT EXISTS (SELECT FROM unnest(b.items) i(id)
					  WHERE NOT EXISTS (SELECT FROM upsell.product_model m
										WHERE m.tenant_id = b.tenant_id AND m.product_id = i.id AND m.in_stock))),
sorted AS (
	SELECT o.*, o.score / max(o.score) OVER (PARTITION BY o.tenant_id, o.product_id, o.offer_type) AS sort
	FROM offers o),
ranked AS (
	SELECT s.*, row_number() OVER (PARTITION BY s.tenant_id, s.product_id
								   ORDER BY s.sort DESC, s.product_ids, s.offer_type) AS n
	FROM sorted s)
SELECT r.tenant_id, r.product_id, r.offer_type, r.product_ids, r.sort, r.score FROM ranked r WHERE r.n <= 12;
SELECT (SELECT count(*) FROM page_reference) AS offers,
	   (SELECT count(*) FROM page_reference WHERE offer_type = 'bundle') AS bundles,
	   (SELECT count(*) FROM (TABLE page_reference EXCEPT ALL
							  SELECT tenant_id, product_id, offer_type, product_ids, sort, score
							  FROM upsell.product_page_model) d)
	   + (SELECT count(*) FROM (SELECT tenant_id, product_id, offer_type, product_ids, sort, score
								FROM upsell.product_page_model EXCEPT ALL TABLE page_reference) d) AS differing;

\i test/data/post_purchase_teardown.sql
DROP SCHEMA groceries_members CASCADE;
