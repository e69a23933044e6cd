-- The earnings ledger: what each route kept per unit and hour. Every instance adds its sums
-- to the same rows (INSERT … ON CONFLICT DO UPDATE), so the ledger is the service's.
CREATE TABLE earnings (
    hour        BIGINT NOT NULL,
    unit        TEXT NOT NULL,
    route       TEXT NOT NULL,
    requests    BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    earned      BIGINT NOT NULL,
    refunded    BIGINT NOT NULL,
    PRIMARY KEY (hour, unit, route)
);
