-- Time passes: bought and extended in the same transaction as the spend that paid for them.
CREATE TABLE passes (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    unit        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    client_key  TEXT
);
CREATE INDEX passes_expires_at ON passes (expires_at);
