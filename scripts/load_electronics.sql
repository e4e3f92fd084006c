-- Loads the bundled electronics shop (test/data/electronics-sales-2019, twelve
-- monthly CSV files) into schema shop: shop.products and shop.order_lines.
-- The files are dirty on purpose: blank lines and repeated header lines are
-- skipped and counted.  Run with psql from the repository root.

DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;

CREATE TEMP TABLE raw_line (line text);
\copy raw_line FROM program 'cat test/data/electronics-sales-2019/Sales_*_2019.csv' WITH (FORMAT text, DELIMITER E'\x01')

-- A line is "id,product,quantity,price,date,\"address, with, commas\"".  The
-- pattern only tells order lines from the rest; the fields are cut with
-- split_part, because a capturing regexp_match costs up to 2.7 ms a line
-- (its matcher allocates and frees a large block per call, and every call
-- faults the pages in anew), against microseconds for a plain match.
CREATE TEMP TABLE parsed AS
SELECT split_part(line, ',', 1)::bigint AS order_id,
	   split_part(line, ',', 2) AS product,
	   split_part(line, ',', 3)::int AS quantity,
	   split_part(line, ',', 4)::numeric(10, 2) AS price_each,
	   to_timestamp(split_part(line, ',', 5), 'MM/DD/YY HH24:MI')::timestamp AS ordered_at,
	   btrim(substr(line, strpos(line, '"')), '"') AS address
FROM raw_line
WHERE line ~ '^\d+,[^,"]+,\d+,[0-9.]+,[0-9/]+ [0-9:]+,"[^"]*"$';

SELECT count(*) AS lines_read,
	   count(*) - (SELECT count(*) FROM parsed) AS blank_or_header_skipped,
	   (SELECT count(*) FROM parsed) AS order_lines_loaded
FROM raw_line \gset
\echo loaded :order_lines_loaded order lines; skipped :blank_or_header_skipped blank or header lines of :lines_read

-- The catalog: categories by kind of product.  A variant group holds the
-- sizes or tiers of one product, and every product of this shop is its own:
-- an iPhone is not a size of a Google Phone, nor AAA batteries of AA ones.
-- Whether a category's products go together (two packs of batteries) or
-- substitute each other (phones) is for the orders to say (upsell.category_model).
CREATE TABLE shop.products (
	product_id	int PRIMARY KEY,
	title		text NOT NULL UNIQUE,
	price		numeric(10, 2) NOT NULL,
	category	text NOT NULL,
	variant_group text NOT NULL,
	in_stock	boolean NOT NULL DEFAULT true
);
INSERT INTO shop.products (product_id, title, price, category, variant_group)
SELECT row_number() OVER (ORDER BY product), product, max(price_each),
	   CASE
		   WHEN product ~ 'Phone$' THEN 'phones'
		   WHEN product ~ 'Cable$' THEN 'cables'
		   WHEN product ~ 'Headphones$' THEN 'headphones'
		   WHEN product ~ 'Monitor$' THEN 'monitors'
		   WHEN product ~ 'Batteries' THEN 'batteries'
		   WHEN product ~ 'Laptop$' THEN 'laptops'
		   WHEN product ~ 'TV$' THEN 'tvs'
		   ELSE 'appliances'
	   END,
	   product
FROM parsed GROUP BY product;

CREATE TABLE shop.order_lines (
	line_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_id	bigint NOT NULL,
	product_id	int NOT NULL REFERENCES shop.products,
	quantity	int NOT NULL,
	unit_price	numeric(10, 2) NOT NULL,
	ordered_at	timestamp NOT NULL,
	customer	text NOT NULL
);
INSERT INTO shop.order_lines (order_id, product_id, quantity, unit_price, ordered_at, customer)
SELECT r.order_id, p.product_id, r.quantity, r.price_each, r.ordered_at, r.address
FROM parsed r JOIN shop.products p ON p.title = r.product
ORDER BY r.order_id, p.product_id;
CREATE INDEX ON shop.order_lines (order_id);
ANALYZE shop.products, shop.order_lines;
