-- A small coffee shop with hand-computed answers, used by sql/70_*.sql.
-- Dates are in 2024 (a leap year: Jan 31 + 30 days = Mar 1).
--
-- coffee (1) per customer:
--   100: Jan 1, Jan 31, Mar 1, Mar 31   gaps 30 30 30  median 30 cv 0       next Apr 30
--   101: Jan 10, Jan 30, Mar 10         gaps 20 40     median 30 cv 0.4714  next Apr 9
--   102: Feb 1                          once: population interval 30         next Mar 2
--   103: Jan 5, Feb 4, Mar 20, May 1    gaps 30 45 42  median 42 cv 0.2035  next Jun 12
-- coffee: 5 buyers (104 too), 3 repeat buyers; population interval = median(30, 30, 42) = 30
-- espresso machine (3): bought once each by 100, 104, 105: durable
-- pairs seen in 2+ orders: coffee+machine (o1, o13), coffee+filters (o5, o7), machine+frother (o13, o14);
-- every product is in fewer than 20 orders, so the pair model keeps the pairs seen once too
SET TimeZone = 'UTC';
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS pp CASCADE;
RESET client_min_messages;
CREATE SCHEMA pp;
CREATE TABLE pp.products (id int PRIMARY KEY, name text, category text, vgroup text,
						  price numeric(10,2), stock int);
INSERT INTO pp.products VALUES
	(1, 'coffee beans', 'coffee', NULL, 10, 50),
	(2, 'filter papers', 'coffee', NULL, 4, 50),
	(3, 'espresso machine', 'machines', 'espresso', 300, 5),
	(4, 'espresso machine pro', 'machines', 'espresso', 500, 5),
	(5, 'milk frother', 'accessories', NULL, 40, 5),
	(6, 'descaler', 'care', NULL, 8, 5),
	(7, 'budget espresso machine', 'machines', 'espresso', 200, 5),
	(8, 'mug', 'accessories', NULL, 12, 0),
	(9, 'tea', 'tea', NULL, 6, 50);
CREATE TABLE pp.orders (order_id int, customer_id int, product_id int, ordered_at date,
						quantity int, unit_price numeric(10,2));
INSERT INTO pp.orders VALUES
	(1, 100, 1, '2024-01-01', 2, 10), (1, 100, 3, '2024-01-01', 1, 300),
	(2, 100, 1, '2024-01-31', 2, 10), (2, 100, 1, '2024-01-31', 1, 10),
	(3, 100, 1, '2024-03-01', 2, 10),
	(4, 100, 1, '2024-03-31', 2, 10),
	(5, 101, 1, '2024-01-10', 1, 10), (5, 101, 2, '2024-01-10', 1, 4),
	(6, 101, 1, '2024-01-30', 1, 10),
	(7, 101, 1, '2024-03-10', 1, 10), (7, 101, 2, '2024-03-10', 1, 4),
	(8, 102, 1, '2024-02-01', 1, 10), (8, 102, 9, '2024-02-01', 1, 6),
	(9, 103, 1, '2024-01-05', 1, 10),
	(10, 103, 1, '2024-02-04', 1, 10),
	(11, 103, 1, '2024-03-20', 1, 10),
	(12, 103, 1, '2024-05-01', 1, 10), (12, 103, 6, '2024-05-01', 1, 8),
	(13, 104, 3, '2024-02-10', 1, 300), (13, 104, 1, '2024-02-10', 1, 10), (13, 104, 5, '2024-02-10', 1, 40),
	(14, 105, 3, '2024-03-05', 1, 300), (14, 105, 5, '2024-03-05', 1, 40), (14, 105, 6, '2024-03-05', 1, 8),
	(15, 106, 9, '2024-04-01', 1, 6), (15, 106, 8, '2024-04-01', 1, 12),
	-- lines the models must skip: no customer, returned
	(16, NULL, 9, '2024-04-02', 1, 6),
	(17, 106, 9, '2024-04-03', -1, 6);
SELECT upsell.register_orders('pp.orders', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
SELECT upsell.register_products('pp.products', 'id', price => 'price', category => 'category',
	variant_group => 'vgroup', in_stock => 'stock', title => 'name');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
