-- Reconciliation reads the unpaid quotes often; they are few next to the paid and issued ones.
CREATE INDEX mint_quotes_unpaid ON mint_quotes (id) WHERE state = 'UNPAID';
