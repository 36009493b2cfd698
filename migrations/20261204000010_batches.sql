-- Bulk ingestion: a batch is many jobs accepted in one upload. Its items are ordinary jobs
-- (with their batch, line and the client's external id); lines that could not become a job are
-- kept as rejections. The counters are kept by triggers in the statements that change the jobs,
-- so reading a batch's progress never counts its items.

CREATE TABLE batches (
    id               uuid        PRIMARY KEY,
    account_id       uuid        NOT NULL REFERENCES accounts (id),
    api_key_id       bigint      REFERENCES api_keys (id),
    idempotency_key  text,
    request_digest   text,
    status           text        NOT NULL DEFAULT 'running'
                                 CHECK (status IN ('running', 'completed', 'cancelled')),
    tasks            text[]      NOT NULL,
    min_score        real        NOT NULL,
    total            integer     NOT NULL DEFAULT 0,
    queued           integer     NOT NULL DEFAULT 0,
    running          integer     NOT NULL DEFAULT 0,
    succeeded        integer     NOT NULL DEFAULT 0,
    failed           integer     NOT NULL DEFAULT 0,
    cancelled        integer     NOT NULL DEFAULT 0,
    rejected         integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CHECK (total = queued + running + succeeded + failed + cancelled + rejected)
);
CREATE INDEX batches_by_account ON batches (account_id, id DESC);
CREATE UNIQUE INDEX batches_by_idempotency_key ON batches (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

ALTER TABLE jobs
    ADD COLUMN batch_id    uuid REFERENCES batches (id),
    ADD COLUMN batch_line  integer,
    ADD COLUMN external_id text CHECK (length(external_id) <= 256),
    ADD CHECK ((batch_id IS NULL) = (batch_line IS NULL));
-- Results in line order; a batch's queued items when it is cancelled.
CREATE UNIQUE INDEX jobs_by_batch_line ON jobs (batch_id, batch_line) WHERE batch_id IS NOT NULL;

CREATE TABLE batch_rejections (
    batch_id      uuid    NOT NULL REFERENCES batches (id),
    line          integer NOT NULL,
    external_id   text,
    error_code    text    NOT NULL,
    error_message text    NOT NULL,
    PRIMARY KEY (batch_id, line)
);

-- Counters. A statement's items of one batch are counted together (one update per batch, not
-- per row); a batch whose items have all ended is completed in the same statement.
CREATE FUNCTION batches_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches b SET
        total   = b.total + c.n,
        queued  = b.queued + c.queued,
        running = b.running + c.running,
        succeeded = b.succeeded + c.succeeded,
        failed  = b.failed + c.failed,
        cancelled = b.cancelled + c.cancelled
    FROM (SELECT batch_id, count(*) AS n,
                 count(*) FILTER (WHERE status = 'queued') AS queued,
                 count(*) FILTER (WHERE status = 'running') AS running,
                 count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                 count(*) FILTER (WHERE status = 'failed') AS failed,
                 count(*) FILTER (WHERE status = 'cancelled') AS cancelled
          FROM new_rows WHERE batch_id IS NOT NULL GROUP BY batch_id) c
    WHERE b.id = c.batch_id;
    RETURN NULL;
END $$;

CREATE FUNCTION batches_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moves AS (
        SELECT n.batch_id, o.status AS was, n.status AS now
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.batch_id IS NOT NULL AND n.status <> o.status
    ), deltas AS (
        SELECT batch_id,
               sum((now = 'queued')::int) - sum((was = 'queued')::int) AS queued,
               sum((now = 'running')::int) - sum((was = 'running')::int) AS running,
               sum((now = 'succeeded')::int) - sum((was = 'succeeded')::int) AS succeeded,
               sum((now = 'failed')::int) - sum((was = 'failed')::int) AS failed,
               sum((now = 'cancelled')::int) - sum((was = 'cancelled')::int) AS cancelled
        FROM moves GROUP BY batch_id
    )
    UPDATE batches b SET
        queued    = b.queued + d.queued,
        running   = b.running + d.running,
        succeeded = b.succeeded + d.succeeded,
        failed    = b.failed + d.failed,
        cancelled = b.cancelled + d.cancelled,
        status = CASE WHEN b.status = 'running' AND b.queued + d.queued + b.running + d.running = 0
                      THEN 'completed' ELSE b.status END,
        completed_at = CASE WHEN b.queued + d.queued + b.running + d.running = 0
                            THEN coalesce(b.completed_at, now()) END
    FROM deltas d
    WHERE b.id = d.batch_id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_batch_inserts AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION batches_count_inserted();
CREATE TRIGGER jobs_count_batch_changes AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION batches_count_changed();
