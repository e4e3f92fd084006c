-- Registers the demo shop loaded by load_electronics.sql and builds the models.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS upsell CASCADE;
CREATE EXTENSION upsell;
SELECT upsell.register_orders('shop.order_lines', order_id => 'order_id', product_id => 'product_id',
	customer_id => 'customer', ordered_at => 'ordered_at', quantity => 'quantity',
	unit_price => 'unit_price');
SELECT upsell.register_products('shop.products', product_id => 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock',
	title => 'title');
SET client_min_messages = notice;
CALL upsell.refresh();
-- the shop's merchant settings: free shipping over $1,000, batteries cheaper by the 3-pack
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 1000, 'free shipping');
INSERT INTO upsell.volume_tiers (category, min_quantity, percent_off) VALUES ('batteries', 3, 15);
