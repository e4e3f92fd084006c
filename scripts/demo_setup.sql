-- Registers the demo shop loaded by load_electronics.sql and builds the models.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS upsell CASCADE;
CREATE EXTENSION upsell;
\ir demo_register.sql
SET client_min_messages = notice;
CALL upsell.refresh();
-- the shop's merchant settings: free shipping over $1,000, batteries cheaper by the 3-pack
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 1000, 'free shipping');
INSERT INTO upsell.volume_tiers (category, min_quantity, percent_off) VALUES ('batteries', 3, 15);
