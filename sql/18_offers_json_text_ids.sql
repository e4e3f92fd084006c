-- offers_json's post-purchase page finds an order, and its customer, by the
-- ids as the shop registered them: text ids such as 'ORD-99' too, not only
-- Shopify's numbers and gids.
SET client_min_messages = warning;
CREATE SCHEMA tj;
CREATE TABLE tj.lines (order_id text, product_id int, customer_id text, ordered_at timestamptz);
INSERT INTO tj.lines
SELECT 'ORD-' || g, p, 'c' || (g % 4), '2026-11-01'::timestamptz + g * interval '1 hour'
FROM generate_series(1, 10) g, generate_series(1, 2) p;
INSERT INTO tj.lines VALUES ('ORD-99', 1, 'c1', '2026-11-02'), ('12345', 2, 'c2', '2026-11-02');
-- customer cz buys product 3 every 10 days, the last 10 days ago: due again
INSERT INTO tj.lines SELECT 'R-' || g, 3, 'cz', now() - g * interval '10 days' FROM generate_series(1, 5) g;
SELECT upsell.register_orders('tj.lines', 'order_id', 'product_id', 'customer_id', 'ordered_at');
CALL upsell.refresh();
RESET client_min_messages;

-- the view and offers_json agree on ORD-99's offers: product 2, bought with
-- 1, then 3 (the bestseller the evidence leaves room for), never product 1,
-- which the order holds
SELECT product_ids FROM upsell.post_purchase_offers WHERE order_id = 'ORD-99' ORDER BY "rank";
SELECT r -> 'notes' AS notes, jsonb_path_query_array(r, '$.offers[*].items[*].product_id') AS offered
FROM upsell.offers_json('post_purchase', '{"order_id": "ORD-99"}') r;
-- an order id of digits, registered as text, is found as that text
SELECT r -> 'notes' AS notes, jsonb_array_length(r -> 'offers') > 0 AS offers
FROM upsell.offers_json('post_purchase', '{"order_id": "12345"}') r;
SELECT r -> 'notes' AS notes FROM upsell.offers_json('post_purchase', '{"order_id": "ORD-404"}') r;
-- the items form: a text customer id is the registered customer's, whose
-- history brings the pitch to subscribe to product 3, bought regularly
-- (without it, none; no restock: one buyer does not make it a consumable,
-- and until 1.8 any product bought was restocked)
SELECT r -> 'notes' AS notes, jsonb_path_query_array(r, '$.offers[*].type') AS offer_types
FROM upsell.offers_json('post_purchase', '{"items": [{"product_id": 1}], "customer_id": "cz"}') r;
SELECT jsonb_path_query_array(r, '$.offers[*].type') AS offer_types
FROM upsell.offers_json('post_purchase', '{"items": [{"product_id": 1}]}') r;

DELETE FROM upsell.order_source;
SET client_min_messages = warning;
DROP SCHEMA tj CASCADE;
RESET client_min_messages;
