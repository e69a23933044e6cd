-- Settings every instance shares (the price list changed through the admin API), versioned
-- so an instance applies only what is newer than what it has.
CREATE TABLE settings (
    name        TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    value       BYTEA NOT NULL
);
