-- The demo shop's flat tables (load_electronics.sql) registered by their
-- columns: by demo_setup.sql, and again at the end of demo_shopify.sql, so
-- that the database make demo leaves is the one the README's examples use.
SELECT upsell.register_orders('shop.order_lines', order_id => 'order_id', product_id => 'product_id',
	customer_id => 'customer', ordered_at => 'ordered_at', quantity => 'quantity',
	unit_price => 'unit_price');
SELECT upsell.register_products('shop.products', product_id => 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock',
	title => 'title');
