-- Each key's rate-limit token bucket in a row of its own (issue 14). Every request's admission
-- takes a token under a row lock; while the bucket lived in the `api_keys` row, that lock also
-- queued the admission behind any statement charging the key's daily quota (a job's insert, a
-- group of cache-answered jobs), and a viral burst's hits waited on the group in progress. The
-- quota stays on the key's row; the bucket moves here, so the two pass each other.
CREATE TABLE key_buckets (
    key_id     bigint           PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    -- Tokens left at `tokens_at`; the bucket refills at the key's rate_per_minute / 60 per
    -- second up to rate_per_minute.
    tokens     double precision NOT NULL,
    tokens_at  timestamptz      NOT NULL DEFAULT now()
);
-- A new key starts with a full bucket, whichever statement creates it.
CREATE FUNCTION api_keys_new_bucket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_buckets (key_id, tokens) VALUES (NEW.id, NEW.rate_per_minute);
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_bucket AFTER INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_new_bucket();

-- The existing keys' buckets, copied after the trigger exists: creating it locked out inserts
-- of keys until this migration commits, so no key is left without a bucket.
INSERT INTO key_buckets (key_id, tokens, tokens_at)
    SELECT id, tokens, tokens_at FROM api_keys;

-- The old columns stay, unused, so API processes of the previous release keep admitting
-- requests (against them) during a rolling upgrade; new keys leave them at their defaults.
ALTER TABLE api_keys ALTER COLUMN tokens SET DEFAULT 0;
COMMENT ON COLUMN api_keys.tokens IS 'unused since key_buckets (20261208000010)';
COMMENT ON COLUMN api_keys.tokens_at IS 'unused since key_buckets (20261208000010)';
