-- The raw tables the public datasets are copied into, as their files are
-- (test/eval/datasets.sh loads them; test/eval/load.sql reads them into
-- upsell_eval.lines).
CREATE UNLOGGED TABLE raw_groceries (n bigint GENERATED ALWAYS AS IDENTITY, line text);
CREATE UNLOGGED TABLE raw_retail (n bigint GENERATED ALWAYS AS IDENTITY, line text);
CREATE UNLOGGED TABLE raw_members (member bigint, day date, item text);
CREATE UNLOGGED TABLE raw_superstore (row_id int, order_id text, order_date text, ship_date text,
	ship_mode text, customer_id text, customer_name text, segment text, country text, city text,
	state text, postal_code text, region text, sku text, top_category text, sub_category text,
	product_name text, sales numeric, quantity int, discount numeric, profit numeric);
CREATE UNLOGGED TABLE raw_electronics (line text);
