-- Loads the bundled Tableau "Sample - Superstore" order lines
-- (test/data/superstore.csv) into schema superstore: superstore.products and
-- superstore.order_lines.  Run with psql from the repository root.
--
-- Product ids: the shop's text SKUs ('OFF-PA-10000174') get an integer key
-- (identity column) next to them, as upsell expects.  Category is the
-- sub-category (Paper, Binders, Chairs...); the variant group is the
-- sub-category and the first word of the product name, i.e. the brand's line
-- in that sub-category ('Binders / GBC').  The list price is the median of
-- the undiscounted unit prices, Sales / Quantity / (1 - Discount).  Names
-- such as "Highlighters, 4/Pack" give a unit size (4 pcs).

\set ON_ERROR_STOP on
DROP SCHEMA IF EXISTS superstore CASCADE;
CREATE SCHEMA superstore;

CREATE TEMP TABLE raw_superstore (
	row_id int, order_id text, order_date text, ship_date text, ship_mode text,
	customer_id text, customer_name text, segment text, country text, city text,
	state text, postal_code text, region text, sku text, top_category text,
	sub_category text, product_name text, sales numeric, quantity int,
	discount numeric, profit numeric);
\copy raw_superstore FROM 'test/data/superstore.csv' WITH (FORMAT csv, HEADER true)

CREATE TABLE superstore.products (
	product_id	int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sku			text NOT NULL UNIQUE,
	title		text NOT NULL,
	top_category text NOT NULL,
	category	text NOT NULL,
	variant_group text NOT NULL,
	price		numeric(10, 2) NOT NULL,
	unit_size	numeric,
	unit_name	text,
	in_stock	boolean NOT NULL DEFAULT true
);
INSERT INTO superstore.products (sku, title, top_category, category, variant_group, price)
SELECT sku, min(product_name), min(top_category), min(sub_category),
	   min(sub_category) || ' / ' || min(split_part(product_name, ' ', 1)),
	   percentile_disc(0.5) WITHIN GROUP (ORDER BY round(sales / quantity / (1 - discount), 2))
FROM raw_superstore
GROUP BY sku
ORDER BY sku;
UPDATE superstore.products
SET unit_size = (regexp_match(title, '(\d+)/Pack'))[1]::numeric, unit_name = 'pcs'
WHERE title ~ '\d+/Pack';

CREATE TABLE superstore.order_lines (
	line_id		int PRIMARY KEY,
	order_id	text NOT NULL,
	customer_id	text NOT NULL,
	ordered_at	date NOT NULL,
	product_id	int NOT NULL REFERENCES superstore.products,
	quantity	int NOT NULL,
	unit_price	numeric(10, 2) NOT NULL,
	discount	numeric NOT NULL
);
INSERT INTO superstore.order_lines
SELECT r.row_id, r.order_id, r.customer_id, to_date(r.order_date, 'DD/MM/YY'), p.product_id,
	   r.quantity, round(r.sales / r.quantity, 2), r.discount
FROM raw_superstore r JOIN superstore.products p USING (sku);
CREATE INDEX ON superstore.order_lines (product_id);
DROP TABLE raw_superstore;

SELECT count(*) AS order_lines_loaded FROM superstore.order_lines \gset
SELECT count(*) AS products_loaded FROM superstore.products \gset
\echo loaded :order_lines_loaded order lines of :products_loaded products
