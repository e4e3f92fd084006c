-- What each funnel stage would show, on the demo shop.
\pset footer off

\echo
\echo '== Pre-purchase: the iPhone product page (upsell.product_page_offers)'
SELECT o."rank", o.offer_type,
	   (SELECT string_agg(p.title, ' + ' ORDER BY p.title) FROM shop.products p WHERE p.product_id = ANY (o.product_ids)) AS offer,
	   o.discount, o.reason
FROM upsell.product_page_offers o
WHERE o.product_id = (SELECT product_id FROM shop.products WHERE title = 'iPhone')
ORDER BY o."rank";

\echo '== During purchase: a cart with a Google Phone and 2 AA batteries (upsell.cart_offers)'
SELECT o."rank", o.offer_type,
	   (SELECT string_agg(p.title, ' + ' ORDER BY p.title) FROM shop.products p WHERE p.product_id = ANY (o.product_ids)) AS offer,
	   o.discount, o.reason
FROM upsell.cart_offers(ARRAY(SELECT product_id::bigint FROM shop.products
							  WHERE title IN ('Google Phone', 'AA Batteries (4-pack)') ORDER BY title),
						'{2,1}') o
ORDER BY o."rank";
SELECT kind, amount, reached, gap, reward
FROM upsell.threshold_gap(ARRAY(SELECT product_id::bigint FROM shop.products
								WHERE title IN ('Google Phone', 'AA Batteries (4-pack)') ORDER BY title), '{2,1}');

\echo '== Post-purchase: the thank-you page of the last order with a phone (upsell.post_purchase_offers)'
SELECT o.order_id, o."rank", o.offer_type,
	   (SELECT string_agg(p.title, ' + ' ORDER BY p.title) FROM shop.products p WHERE p.product_id = ANY (o.product_ids)) AS offer,
	   o.reason
FROM upsell.post_purchase_offers o
WHERE o.order_id = (SELECT max(order_id)::text FROM shop.order_lines l JOIN shop.products p USING (product_id)
					WHERE p.category = 'phones')
ORDER BY o."rank";

\echo '== Analyst: the strongest pairs in the shop (upsell.frequently_bought_together)'
SELECT a.title AS product, b.title AS other, f.together, round(f.confidence::numeric, 3) AS confidence,
	   round(f.lift::numeric, 2) AS lift, round(f.score::numeric, 3) AS score
FROM upsell.frequently_bought_together(min_count => 100) f
JOIN shop.products a ON a.product_id = f.product_id
JOIN shop.products b ON b.product_id = f.other_id
ORDER BY f.score DESC, f.product_id, f.other_id
LIMIT 5;
