-- What each funnel stage would show, on the demo shop.
\pset footer off

\echo
\echo '== Product page: frequently bought together with an iPhone'
SELECT r.rank, p.title, round(r.score::numeric, 3) AS score, r.reason
FROM upsell.recommend_for_cart(ARRAY(SELECT product_id::bigint FROM shop.products WHERE title = 'iPhone')) r
JOIN shop.products p USING (product_id)
ORDER BY r.rank;

\echo '== Cart: a Google Phone and Wired Headphones'
SELECT r.rank, p.title, round(r.score::numeric, 3) AS score,
	   (SELECT string_agg(b.title, ', ') FROM shop.products b WHERE b.product_id = ANY (r.because)) AS because
FROM upsell.recommend_for_cart(ARRAY(SELECT product_id::bigint FROM shop.products
									 WHERE title IN ('Google Phone', 'Wired Headphones'))) r
JOIN shop.products p USING (product_id)
ORDER BY r.rank;

\echo '== Analyst: the strongest pairs in the shop'
SELECT a.title AS product, b.title AS other, f.together, round(f.confidence::numeric, 3) AS confidence,
	   round(f.lift::numeric, 2) AS lift, round(f.score::numeric, 3) AS score
FROM upsell.frequently_bought_together(min_count => 100) f
JOIN shop.products a ON a.product_id = f.product_id
JOIN shop.products b ON b.product_id = f.other_id
ORDER BY f.score DESC, f.product_id, f.other_id
LIMIT 8;
