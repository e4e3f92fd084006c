-- Turns the raw copies of the public datasets (filled by scripts/eval.sh with
-- COPY ... FROM STDIN, one table per file, absent ones empty) into
-- upsell_eval.lines.  Products are numbered by name or SKU; seq is the
-- order's position in time: the file's order; one line per order and product where the data has no dates
-- (groceries, FIMI retail: in time order), else date then order id.
\set ON_ERROR_STOP on

-- groceries.csv: one basket per line, items comma-separated
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq)
SELECT DISTINCT 'groceries', r.n, i.id, r.n
FROM raw_groceries r, unnest(string_to_array(r.line, ',')) x(name)
JOIN (SELECT name, row_number() OVER (ORDER BY name) AS id
	  FROM (SELECT DISTINCT unnest(string_to_array(line, ',')) AS name FROM raw_groceries) n) i USING (name);

-- retail.dat: one basket per line, integer items separated by spaces
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq)
SELECT DISTINCT 'retail', r.n, x::bigint, r.n
FROM raw_retail r, unnest(string_to_array(btrim(r.line), ' ')) x
WHERE x <> '';

-- Groceries_dataset.csv: a basket is (member, date); category = the name's
-- last word ("whole milk" -> milk), as scripts/load_groceries_members.sql
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq, category)
SELECT DISTINCT 'groceries-members', b.seq, i.id, b.seq, i.category
FROM raw_members r
JOIN (SELECT member, day, row_number() OVER (ORDER BY day, member) AS seq
	  FROM raw_members GROUP BY member, day) b USING (member, day)
JOIN (SELECT name, row_number() OVER (ORDER BY name) AS id, regexp_replace(name, '^.* ', '') AS category
	  FROM (SELECT DISTINCT item AS name FROM raw_members) n) i ON i.name = r.item;

-- Superstore: category = sub-category, variant group = sub-category + brand,
-- list price as scripts/load_superstore.sql computes it
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq, category, variant_group, price)
SELECT DISTINCT 'superstore', o.seq, p.id, o.seq, p.category, p.variant_group, p.price
FROM raw_superstore r
JOIN (SELECT order_id, row_number() OVER (ORDER BY min(to_date(order_date, 'DD/MM/YY')), order_id) AS seq
	  FROM raw_superstore GROUP BY order_id) o USING (order_id)
JOIN (SELECT sku, row_number() OVER (ORDER BY sku) AS id, min(sub_category) AS category,
			 min(sub_category) || ' / ' || min(split_part(product_name, ' ', 1)) AS variant_group,
			 percentile_disc(0.5) WITHIN GROUP (ORDER BY round(sales / quantity / (1 - discount), 2)) AS price
	  FROM raw_superstore GROUP BY sku) p USING (sku);

-- electronics: Order ID, Product, Quantity, Price Each, Order Date, Address;
-- blank and repeated header lines skipped (parsed once); categories as
-- scripts/load_electronics.sql, every product its own variant group
CREATE TEMP TABLE parsed_electronics AS
SELECT split_part(line, ',', 1)::bigint AS order_id, split_part(line, ',', 2) AS product,
	   split_part(line, ',', 4)::numeric AS price,
	   to_timestamp(split_part(line, ',', 5), 'MM/DD/YY HH24:MI') AS ordered_at
FROM raw_electronics
-- a plain match, not a capturing regexp_match (see scripts/load_electronics.sql)
WHERE line ~ '^\d+,[^,]+,\d+,[0-9.]+,[0-9/]+ [0-9:]+,';
INSERT INTO upsell_eval.lines (dataset, order_id, product_id, seq, category, variant_group, price)
SELECT DISTINCT 'electronics', o.seq, p.id, o.seq, p.category, p.product, p.price
FROM parsed_electronics r
JOIN (SELECT order_id, row_number() OVER (ORDER BY min(ordered_at), order_id) AS seq
	  FROM parsed_electronics GROUP BY order_id) o USING (order_id)
JOIN (SELECT product, row_number() OVER (ORDER BY product) AS id, max(price) AS price,
			 CASE WHEN product ~ 'Phone$' THEN 'phones' WHEN product ~ 'Cable$' THEN 'cables'
				  WHEN product ~ 'Headphones$' THEN 'headphones' WHEN product ~ 'Monitor$' THEN 'monitors'
				  WHEN product ~ 'Batteries' THEN 'batteries' WHEN product ~ 'Laptop$' THEN 'laptops'
				  WHEN product ~ 'TV$' THEN 'tvs' ELSE 'appliances' END AS category
	  FROM parsed_electronics GROUP BY product) p USING (product);

CREATE INDEX ON upsell_eval.lines (dataset, seq);
ANALYZE upsell_eval.lines;
