-- Loads the bundled Kaggle "Groceries dataset" (test/data/groceries-members.csv:
-- Member_number,Date,itemDescription; 38,765 lines, 2014-01-01 .. 2015-12-30)
-- into schema groceries_members:
--   items (item_id, name, category) numbered by name; category is the last
--     word of the name ("whole milk" -> milk, "root vegetables" ->
--     vegetables): the data has none, and this groups like with like
--   lines (order_id, member, day, item_id): a basket is (member, date), so
--     order_id numbers the distinct (member, date) pairs
-- Run with psql from the repository root.

DROP SCHEMA IF EXISTS groceries_members CASCADE;
CREATE SCHEMA groceries_members;
CREATE TABLE groceries_members.raw (member bigint, day date, item text);
\copy groceries_members.raw FROM 'test/data/groceries-members.csv' WITH (FORMAT csv, HEADER true)

CREATE TABLE groceries_members.items AS
SELECT (row_number() OVER (ORDER BY name))::bigint AS item_id, name,
	   regexp_replace(name, '^.* ', '') AS category
FROM (SELECT DISTINCT item AS name FROM groceries_members.raw) n;
ALTER TABLE groceries_members.items ADD PRIMARY KEY (item_id);

CREATE TABLE groceries_members.lines AS
SELECT dense_rank() OVER (ORDER BY r.member, r.day)::bigint AS order_id, r.member, r.day, i.item_id
FROM groceries_members.raw r
JOIN groceries_members.items i ON i.name = r.item
ORDER BY r.member, r.day, i.item_id;
ANALYZE groceries_members.items, groceries_members.lines;
