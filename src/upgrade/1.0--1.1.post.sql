
-- ===========================================================================
-- Upgrade 1.0 -> 1.1, after the 1.1 install script: the kept tables brought
-- to their 1.1 shape (append ALTERs here, one block per change)
-- ===========================================================================
