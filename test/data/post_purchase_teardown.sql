-- Ends a sql/70_* test: forget the registrations and the merchant rules.
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DELETE FROM upsell.cart_source;
DELETE FROM upsell.consumables;
DELETE FROM upsell.exclusions;
