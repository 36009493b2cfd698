-- Images a job makes (the annotate task's annotated.jpg, ...), stored with the job: deleted
-- with it (cascade) and whenever its result is purged (the trigger), by every purge path alike.
CREATE TABLE job_artifacts (
    job_id     uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    mime       text        NOT NULL,
    width      integer     NOT NULL CHECK (width > 0),
    height     integer     NOT NULL CHECK (height > 0),
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes      bytea       NOT NULL CHECK (octet_length(bytes) <= 16777216),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);

-- Artifacts are bytes of the image: a purge (by the owner or by retention) erases them with
-- the result.
CREATE FUNCTION delete_purged_job_artifacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_artifacts WHERE job_id = NEW.id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER job_artifacts_purged
    AFTER UPDATE OF purged_at ON jobs
    FOR EACH ROW
    WHEN (NEW.purged_at IS NOT NULL AND OLD.purged_at IS NULL)
    EXECUTE FUNCTION delete_purged_job_artifacts();
