-- Tenancy: every key and every job belongs to an account, the unit of ownership, with its own
-- daily quota (the sum of its keys' submissions), retention period and GPS redaction switch.

CREATE TABLE accounts (
    id              uuid        PRIMARY KEY,
    -- Not unique: `imgmeta keys create` names a new account after its key. Looking an account
    -- up by name is refused when the name is ambiguous.
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 400),
    daily_quota     integer     NOT NULL CHECK (daily_quota > 0),
    -- Accepted submissions of all the account's keys on `quota_day` (a UTC date).
    quota_day       date        NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
    quota_used      integer     NOT NULL DEFAULT 0,
    -- Results of finished jobs older than this are purged by the retention sweep.
    retention_days  integer     NOT NULL DEFAULT 30 CHECK (retention_days BETWEEN 1 AND 36500),
    -- When on, no GPS coordinates of this account's images are ever stored.
    redact_gps      boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_by_name ON accounts (name);

-- The built-in account: with IMGMETA_AUTH=disabled everything belongs to it. It also receives
-- the jobs of an upgraded database whose owner cannot be known (see below).
INSERT INTO accounts (id, name, daily_quota)
VALUES ('00000000-0000-0000-0000-000000000000', 'built-in', 2147483647);

-- Every existing key moves into an account of its own, named after it, with its quota.
ALTER TABLE api_keys
    ADD COLUMN account_id uuid,
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['jobs:write', 'jobs:read']
        CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['jobs:write', 'jobs:read', 'keys:manage']);
UPDATE api_keys SET account_id = gen_random_uuid();
INSERT INTO accounts (id, name, daily_quota, created_at)
SELECT account_id, name, daily_quota, created_at FROM api_keys;
ALTER TABLE api_keys
    ALTER COLUMN account_id SET NOT NULL,
    ADD CONSTRAINT api_keys_account FOREIGN KEY (account_id) REFERENCES accounts (id);
CREATE INDEX api_keys_by_account ON api_keys (account_id, id);

-- Jobs record their account (and the key that submitted them, for audits). Jobs accepted before
-- this migration recorded no key: with exactly one key in the database they were its jobs and
-- move to its account; otherwise they cannot be attributed and move to the built-in account.
-- Nothing is deleted either way.
ALTER TABLE jobs
    ADD COLUMN account_id uuid,
    ADD COLUMN api_key_id bigint REFERENCES api_keys (id),
    -- When the result was erased (on request or by retention); the row stays as a tombstone.
    ADD COLUMN purged_at  timestamptz;
UPDATE jobs SET account_id = coalesce(
    (SELECT account_id FROM api_keys WHERE (SELECT count(*) FROM api_keys) = 1),
    '00000000-0000-0000-0000-000000000000');
ALTER TABLE jobs
    ALTER COLUMN account_id SET NOT NULL,
    ADD CONSTRAINT jobs_account FOREIGN KEY (account_id) REFERENCES accounts (id);

-- A succeeded job keeps its result until it is purged.
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'jobs'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%result IS NOT NULL%'
    LOOP
        EXECUTE format('ALTER TABLE jobs DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE jobs
    ADD CONSTRAINT jobs_result_only_when_succeeded CHECK (result IS NULL OR status = 'succeeded'),
    ADD CONSTRAINT jobs_succeeded_has_result
        CHECK (status <> 'succeeded' OR result IS NOT NULL OR purged_at IS NOT NULL);

-- Idempotency keys are unique per account, not globally.
DROP INDEX jobs_idempotency_key;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The account's job list, newest first (ids are UUIDv7, ordered by creation).
CREATE INDEX jobs_by_account ON jobs (account_id, id DESC);
-- The retention sweep: finished jobs not yet purged, per account by age.
CREATE INDEX jobs_unpurged_by_finish ON jobs (account_id, finished_at)
    WHERE purged_at IS NULL AND finished_at IS NOT NULL;
