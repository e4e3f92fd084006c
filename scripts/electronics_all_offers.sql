-- pg_temp.all_offers(base): every offer of every stage on the electronics
-- shop (load_electronics.sql), with ids as flat ids -- Shopify variants are
-- 40000000000 + product id and orders 5000000000 + order id
-- (load_electronics_shopify.sql), so base is 0 for the flat registration
-- and 40000000000 for the Shopify one.  Each product page of the catalog
-- (a line item of a variant the documents name but the catalog does not is
-- a product of the Shopify registration alone, its page bestsellers), a
-- cart of every two products, the thank-you page of the last 300 orders.  Upgrade reasons
-- name the catalog title, which Shopify writes "Product - Variant": they
-- are compared without it.  Used by the demo and sql/16_shopify_electronics.
CREATE FUNCTION pg_temp.all_offers(base bigint)
RETURNS TABLE (stage text, context bigint, "rank" int, offer_type text, products bigint[],
			   discount numeric, score numeric, reason text)
LANGUAGE sql
AS $$
	SELECT 'page', o.product_id % 40000000000, o."rank", o.offer_type,
		   ARRAY(SELECT x % 40000000000 FROM unnest(o.product_ids) x), o.discount, round(o.score::numeric, 9),
		   regexp_replace(o.reason, '^instead of [^:]*:', 'instead of ...:')
	FROM upsell.product_page_offers o
	WHERE o.product_id % 40000000000 IN (SELECT p.product_id FROM shop.products p)
	UNION ALL
	SELECT 'cart', a.product_id * 100 + b.product_id, c."rank", c.offer_type,
		   ARRAY(SELECT x % 40000000000 FROM unnest(c.product_ids) x), c.discount, round(c.score::numeric, 9),
		   regexp_replace(c.reason, '^instead of [^:]*:', 'instead of ...:')
	FROM shop.products a JOIN shop.products b ON a.product_id < b.product_id,
		 upsell.cart_offers(ARRAY[a.product_id + base, b.product_id + base], '{1,3}') c
	UNION ALL
	SELECT 'post', o.order_id::bigint % 5000000000, o."rank", o.offer_type,
		   ARRAY(SELECT x % 40000000000 FROM unnest(o.product_ids) x), o.discount, round(o.score::numeric, 9),
		   o.reason
	FROM upsell.post_purchase_offers o
	WHERE o.order_id::bigint % 5000000000 IN (SELECT DISTINCT order_id FROM shop.order_lines ORDER BY 1 DESC LIMIT 300)
$$;
