-- Security: API keys with their per-key rate limit and daily quota, and the per-host fetch
-- schedule shared by every worker.

-- Only the SHA-256 of a key is kept; `prefix` (the type prefix and 8 random characters) names
-- it publicly. A revoked key stays, so its prefix is never reused and its history is kept.
CREATE TABLE api_keys (
    id               bigserial   PRIMARY KEY,
    prefix           text        NOT NULL UNIQUE,
    key_hash         bytea       NOT NULL CHECK (length(key_hash) = 32),
    name             text        NOT NULL,
    rate_per_minute  integer     NOT NULL CHECK (rate_per_minute > 0),
    daily_quota      integer     NOT NULL CHECK (daily_quota > 0),
    -- The token bucket: tokens left at `tokens_at`; it refills at rate_per_minute / 60 per
    -- second up to rate_per_minute.
    tokens           double precision NOT NULL,
    tokens_at        timestamptz NOT NULL DEFAULT now(),
    -- Submissions counted against the quota on `quota_day` (a UTC date).
    quota_day        date        NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
    quota_used       integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- When the next fetch from each image host may start. Workers reserve a slot with one atomic
-- upsert and wait for it, so the configured rate per host holds across all worker processes.
CREATE TABLE host_slots (
    host     text        PRIMARY KEY,
    next_at  timestamptz NOT NULL
);
