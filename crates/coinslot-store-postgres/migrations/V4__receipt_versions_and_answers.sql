-- Receipts carry a version, bumped by every write, so a write can be made conditional on
-- the version its writer read (one run per payment, across instances).
ALTER TABLE receipts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- The answers paid requests got, kept for retries of the same request until they expire.
CREATE TABLE answers (
    key        BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    data       BYTEA NOT NULL
);
CREATE INDEX answers_expires_at ON answers (expires_at);
