-- Jobs: the source of truth for every accepted submission and its outcome.
CREATE TABLE jobs (
    id              uuid        PRIMARY KEY,
    url             text        NOT NULL,
    tasks           text[]      NOT NULL,
    min_score       real        NOT NULL CHECK (min_score >= 0 AND min_score <= 1),
    status          text        NOT NULL DEFAULT 'queued'
                                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Incremented by every claim; completion is guarded by it so a stale worker cannot
    -- overwrite a newer run.
    attempts        integer     NOT NULL DEFAULT 0,
    -- While running: the claim is valid until then; a worker renews it while it works.
    lease_until     timestamptz,
    worker_id       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    error_code      text,
    error_message   text,
    result          jsonb,
    CHECK ((status = 'failed') = (error_code IS NOT NULL)),
    CHECK ((status = 'succeeded') = (result IS NOT NULL))
);

-- The status endpoint reads by primary key. Live jobs are scanned by lease expiry
-- (reconciliation) and by age (queue monitoring); terminal jobs are never scanned.
CREATE INDEX jobs_live_by_lease ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_live_by_age ON jobs (created_at) WHERE status = 'queued';
