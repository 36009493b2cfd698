-- Signed webhooks: a job or batch may name a URL to be told when it ends. Each event is a
-- delivery row written by a trigger in the statement that ends the job (or completes the batch),
-- so an ended job can never lack its delivery, whichever path ended it; the API processes send
-- them (at least once, one webhook-id per delivery) and record every attempt.

-- The account's signing secret (the bytes behind `whsec_…`), and the ones it replaced, each of
-- which keeps signing until its `valid_until` so receivers can switch without losing a message
-- (a second rotation within the overlap keeps the first secret too: the client that retried a
-- rotation whose answer it never saw still has a secret that verifies).
CREATE TABLE webhook_secrets (
    account_id      uuid        PRIMARY KEY REFERENCES accounts (id),
    secret          bytea       NOT NULL CHECK (length(secret) BETWEEN 24 AND 64),
    rotated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE webhook_previous_secrets (
    account_id      uuid        NOT NULL REFERENCES accounts (id),
    secret          bytea       NOT NULL CHECK (length(secret) BETWEEN 24 AND 64),
    valid_until     timestamptz NOT NULL
);
CREATE INDEX webhook_previous_secrets_by_account ON webhook_previous_secrets (account_id, valid_until);

ALTER TABLE jobs ADD COLUMN webhook_url text CHECK (length(webhook_url) <= 2048);
ALTER TABLE batches ADD COLUMN webhook_url text CHECK (length(webhook_url) <= 2048);

CREATE TABLE webhook_deliveries (
    -- Orders an account's list (newest first) and is its page cursor.
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The `webhook-id` header: the same on every attempt of this delivery.
    id              uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    account_id      uuid        NOT NULL REFERENCES accounts (id),
    event           text        NOT NULL
                                CHECK (event IN ('job.succeeded', 'job.failed', 'batch.completed')),
    job_id          uuid        REFERENCES jobs (id),
    batch_id        uuid        REFERENCES batches (id),
    url             text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed', 'gone')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- When the next attempt is due; while an attempt is in flight, when it is given up for lost.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The payload, fixed at the first attempt so every retry sends the same bytes.
    body            text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK ((job_id IS NULL) <> (batch_id IS NULL)),
    CHECK ((status = 'pending') = (finished_at IS NULL))
);
-- One event per job and one per batch: an ended job or a completed batch is told once.
CREATE UNIQUE INDEX webhook_deliveries_one_per_job ON webhook_deliveries (job_id)
    WHERE job_id IS NOT NULL;
CREATE UNIQUE INDEX webhook_deliveries_one_per_batch ON webhook_deliveries (batch_id)
    WHERE batch_id IS NOT NULL;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_account ON webhook_deliveries (account_id, seq DESC);

-- A job that ends (or is recorded already ended: a cache hit) with a webhook URL gets its event.
CREATE FUNCTION webhooks_job_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_deliveries (account_id, event, job_id, url)
        SELECT n.account_id, 'job.' || n.status, n.id, n.webhook_url
        FROM new_rows n
        WHERE n.webhook_url IS NOT NULL AND n.status IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO webhook_deliveries (account_id, event, job_id, url)
        SELECT n.account_id, 'job.' || n.status, n.id, n.webhook_url
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.webhook_url IS NOT NULL AND n.status IN ('succeeded', 'failed')
          AND o.status NOT IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_webhook_on_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhooks_job_ended();
CREATE TRIGGER jobs_webhook_on_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_job_ended();

-- A batch that completes (its last item ended, or it had nothing to run) with a webhook URL.
CREATE FUNCTION webhooks_batch_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (account_id, event, batch_id, url)
    VALUES (NEW.account_id, 'batch.completed', NEW.id, NEW.webhook_url)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER batches_webhook_on_complete AFTER UPDATE OF status ON batches
    FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status <> 'completed'
                       AND NEW.webhook_url IS NOT NULL)
    EXECUTE FUNCTION webhooks_batch_completed();
