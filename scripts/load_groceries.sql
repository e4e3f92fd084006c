-- Loads the bundled arules "Groceries" baskets (test/data/groceries.csv: one
-- transaction per line, items comma-separated) into schema groceries:
-- groceries.items (item_id, name) numbered by name, and groceries.lines
-- (order_id = line number, item_id).  Run with psql from the repository root.

DROP SCHEMA IF EXISTS groceries CASCADE;
CREATE SCHEMA groceries;
CREATE TABLE groceries.raw (order_id bigint GENERATED ALWAYS AS IDENTITY, line text);
\copy groceries.raw (line) FROM 'test/data/groceries.csv' WITH (FORMAT text, DELIMITER E'\x01')

CREATE TABLE groceries.items AS
SELECT (row_number() OVER (ORDER BY name))::bigint AS item_id, name
FROM (SELECT DISTINCT unnest(string_to_array(line, ',')) AS name FROM groceries.raw) n;
ALTER TABLE groceries.items ADD PRIMARY KEY (item_id);

CREATE TABLE groceries.lines AS
SELECT r.order_id, i.item_id
FROM groceries.raw r, unnest(string_to_array(r.line, ',')) AS x(name)
JOIN groceries.items i ON i.name = x.name
ORDER BY r.order_id, i.item_id;
ANALYZE groceries.items, groceries.lines;
