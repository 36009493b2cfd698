-- Uploaded images: a job's image is fetched from its url or uploaded with it. An upload's bytes
-- are the job's input, stored beside the job in the transaction that accepts it; the job row
-- keeps the upload's length and sha256 (shown in the resource, and in the idempotency digest).
ALTER TABLE jobs
    ALTER COLUMN url DROP NOT NULL,
    ADD COLUMN input_sha256 text CHECK (input_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN input_bytes  bigint CHECK (input_bytes > 0),
    -- A job has a url or an input, never both, never neither.
    ADD CONSTRAINT jobs_url_or_input CHECK (
        (url IS NULL) <> (input_sha256 IS NULL)
        AND (input_sha256 IS NULL) = (input_bytes IS NULL)
    );

-- The bytes, checked against their digest by the database itself, so a worker can only ever
-- read what the client sent. Deleted with the job (cascade) and whenever it is purged (the
-- trigger), by every purge path alike, as job_artifacts are.
CREATE TABLE job_inputs (
    job_id     uuid        PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes      bytea       NOT NULL CHECK (octet_length(bytes) > 0
                                           AND octet_length(bytes) <= 268435456),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (sha256 = encode(sha256(bytes), 'hex'))
);

CREATE FUNCTION delete_purged_job_inputs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_inputs WHERE job_id = NEW.id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER job_inputs_purged
    AFTER UPDATE OF purged_at ON jobs
    FOR EACH ROW
    WHEN (NEW.purged_at IS NOT NULL AND OLD.purged_at IS NULL)
    EXECUTE FUNCTION delete_purged_job_inputs();
