-- Reliability: a transactional outbox of job messages, idempotency keys and cancellation.

-- A row per message still owed to the broker. Written in the same transaction as the job (or
-- its retry), deleted by the relay only after the broker confirmed the message.
CREATE TABLE outbox (
    id            bigserial   PRIMARY KEY,
    job_id        uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- Retries with backoff become due later.
    available_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (available_at, id);

ALTER TABLE jobs
    -- Client-chosen key making a submission safe to repeat, and a digest of the request body
    -- it was first used with.
    ADD COLUMN idempotency_key text,
    ADD COLUMN request_digest  text,
    -- When the latest message for this job was confirmed by the broker.
    ADD COLUMN published_at    timestamptz,
    -- The error of the latest failed run while the job waits for a retry.
    ADD COLUMN last_error_code    text,
    ADD COLUMN last_error_message text;

CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
