-- The URL cache (issue 14): what a URL answered, under its normalised form and the model that
-- looked at it, with the origin's freshness; and the single flights that keep N concurrent
-- submissions of one uncached URL to one fetch and one inference across the deployment.
--
-- An entry is positive (the analysis of the bytes the URL served: its metadata and detections
-- down to the cache's score floor) or negative (the URL's permanent error, kept briefly so a
-- viral broken link does not hammer its host). Like content_cache it holds what a URL served,
-- never who asked.
CREATE TABLE url_cache (
    url_key          text        NOT NULL,
    model            text        NOT NULL,
    sha256           text        CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    image            jsonb,
    objects          jsonb,
    error_code       text,
    error_message    text,
    -- The origin's validators, sent back when the entry is revalidated.
    etag             text,
    last_modified    text,
    -- Cache-Control: no-cache: usable only after a revalidation, never served stale.
    must_revalidate  boolean     NOT NULL DEFAULT false,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    hit_at           timestamptz NOT NULL DEFAULT now(),
    hits             bigint      NOT NULL DEFAULT 0,
    bytes            integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (url_key, model),
    CHECK (error_code IS NOT NULL OR image IS NOT NULL OR objects IS NOT NULL)
);
CREATE INDEX url_cache_by_use ON url_cache (hit_at);
CREATE INDEX url_cache_by_expiry ON url_cache (expires_at);

-- One row per URL being fetched for the cache right now: its leading job. Followers are jobs
-- whose `follows` names the leader; they have no message and complete in the leader's commit.
CREATE TABLE url_flights (
    url_key     text        PRIMARY KEY,
    leader_job  uuid        NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE jobs ADD COLUMN follows uuid;
CREATE INDEX jobs_followers ON jobs (follows) WHERE follows IS NOT NULL;

-- The detector versions workers run now (each announces its own every minute): the API
-- answers from entries made by one of them, so a model change misses.
CREATE TABLE models_seen (
    model    text        PRIMARY KEY,
    seen_at  timestamptz NOT NULL DEFAULT now()
);

-- A job failed from a negative entry keeps how the cache answered (`result.cache`) and nothing
-- else; every other failed, queued or running job still has no result.
ALTER TABLE jobs DROP CONSTRAINT jobs_result_only_when_succeeded,
    ADD CONSTRAINT jobs_result_only_when_succeeded CHECK (
        result IS NULL OR status = 'succeeded'
        OR (status = 'failed' AND result - 'cache' = '{}'::jsonb));
