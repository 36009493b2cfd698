-- A job's webhook event from row triggers whose WHEN condition PostgreSQL checks itself, instead
-- of statement triggers with transition tables (issue 14). The statement triggers ran a PL/pgSQL
-- function and scanned the statement's old and new rows on every insert and update of jobs, with
-- or without a webhook URL among them: with a viral image's cache hits recorded in groups that is
-- every statement. A row trigger with WHEN costs nothing for a row it does not match, and the
-- rule is the same: a job that is recorded already ended (a cache hit) or moves into an end state
-- with a webhook URL gets its one event, in the statement that ends it.
DROP TRIGGER jobs_webhook_on_insert ON jobs;
DROP TRIGGER jobs_webhook_on_update ON jobs;
DROP FUNCTION webhooks_job_ended();

CREATE FUNCTION webhooks_job_row_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (account_id, event, job_id, url)
    VALUES (NEW.account_id, 'job.' || NEW.status, NEW.id, NEW.webhook_url)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_webhook_on_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.webhook_url IS NOT NULL AND NEW.status IN ('succeeded', 'failed'))
    EXECUTE FUNCTION webhooks_job_row_ended();
CREATE TRIGGER jobs_webhook_on_update AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.webhook_url IS NOT NULL AND NEW.status IN ('succeeded', 'failed')
                       AND OLD.status NOT IN ('succeeded', 'failed'))
    EXECUTE FUNCTION webhooks_job_row_ended();
