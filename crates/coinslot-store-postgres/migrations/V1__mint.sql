-- The Coinslot mint's state. Points (Y of spent proofs, B_ of signed outputs) are keyed by
-- their 33-byte compressed encoding, so one point has exactly one key. Amounts are BIGINT:
-- the store refuses values above 2^63 - 1.

CREATE TABLE keysets (
    id     TEXT PRIMARY KEY,
    record JSONB NOT NULL
);

CREATE TABLE mint_quotes (
    id         TEXT PRIMARY KEY,
    lookup_id  TEXT NOT NULL UNIQUE,
    -- UNPAID, PAID or ISSUED: the authoritative state (record holds the rest).
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    record     JSONB NOT NULL
);

-- The double-spend guard: a Y is inserted once, by one transaction.
CREATE TABLE spent (
    y BYTEA PRIMARY KEY
);

-- Never sign a B_ twice, and answer NUT-09 restores.
CREATE TABLE signatures (
    b         BYTEA PRIMARY KEY,
    signature JSONB NOT NULL
);

CREATE TABLE receipts (
    key        BYTEA PRIMARY KEY,
    created_at BIGINT NOT NULL,
    data       BYTEA NOT NULL
);
CREATE INDEX receipts_created_at ON receipts (created_at);

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    unit       TEXT NOT NULL,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    created_at BIGINT NOT NULL
);

-- Value counters per keyset, append-only: every commit inserts its delta instead of
-- updating one row per keyset, which would make all commits of a keyset wait on one row
-- lock. Reads sum the rows; compaction folds them into one row per keyset.
CREATE TABLE supply_deltas (
    keyset_id TEXT NOT NULL,
    issued    BIGINT NOT NULL,
    redeemed  BIGINT NOT NULL
);
CREATE INDEX supply_deltas_keyset ON supply_deltas (keyset_id);
