//! Jobs answered at once from the URL cache, recorded many in one statement: under a viral
//! spike most submissions are such answers, and one statement (one plan, one trigger run, one
//! commit) for a whole group of them costs the database a fraction of one per job.

use crate::jobs::{JobAdmission, JobRecord, NewJob, decode_job};
use crate::{Store, StoreError};
use imgmeta_domain::Source;

/// Whether [`Store::insert_answered`] takes this job: answered from the cache (a result or a
/// remembered error), for a URL, without an idempotency key, an upload or a dream.
pub fn is_answered(job: &NewJob) -> bool {
    matches!(job.admission, JobAdmission::Answered { .. })
        && matches!(job.spec.source, Source::Url(_))
        && job.input.is_none()
        && job.idempotency.is_none()
        && job.spec.dream.is_none()
}

impl Store {
    /// Records answered jobs ([`is_answered`]) in one statement and charges each to its key's
    /// and account's daily quotas, exactly when every key and account of the group has room
    /// for all of its jobs: `Ok(None)` records nothing (some quota would overflow; record
    /// them one by one with [`Store::insert_job`], which refuses exactly the ones that do not
    /// fit). The keys' rows are locked before the accounts', each in id order, as
    /// `insert_job` locks a key before its account, so groups and single jobs on any number
    /// of API replicas never wait for each other in a cycle. The records come back in the
    /// order of `jobs`, with the results that were sent.
    pub async fn insert_answered(
        &self,
        jobs: &[NewJob],
    ) -> Result<Option<Vec<JobRecord>>, StoreError> {
        let mut columns = Columns::default();
        for job in jobs {
            let (Source::Url(url), JobAdmission::Answered { result, error }, true) =
                (&job.spec.source, &job.admission, is_answered(job))
            else {
                return Err(StoreError::MismatchedInput(job.id.as_uuid()));
            };
            columns.id.push(job.id.as_uuid());
            columns.url.push(url.as_str().to_owned());
            columns.tasks.push(job.spec.tasks.as_strs().join(","));
            columns
                .min_score
                .push(f64::from(job.spec.min_score.value()));
            columns.trace_parent.push(job.trace_parent.clone());
            columns.account.push(job.owner.account.as_uuid());
            columns.key.push(job.owner.key_id);
            columns.bypass.push(job.spec.bypass_cache);
            columns
                .webhook
                .push(job.spec.webhook_url.as_ref().map(|w| w.as_str().to_owned()));
            let index = columns.distinct(result);
            columns.result.push(index);
            match error {
                None => {
                    columns.status.push("succeeded");
                    columns.error_code.push(None);
                    columns.error_message.push(None);
                }
                Some(e) => {
                    columns.status.push("failed");
                    columns.error_code.push(Some(e.code.as_str()));
                    columns.error_message.push(Some(e.message.clone()));
                }
            }
        }
        if jobs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let rows = sqlx::query(concat!(
            "WITH r AS MATERIALIZED (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[], $5::text[],
                                      $6::uuid[], $7::int8[], $8::bool[], $9::text[], $10::int4[],
                                      $11::text[], $12::text[], $13::text[])
                     WITH ORDINALITY
                     AS r(id, url, tasks, min_score, trace_parent, account_id, api_key_id,
                          bypass_cache, status, result_index, error_code, error_message,
                          webhook_url, ord)
             ), keys AS MATERIALIZED (
                 SELECT id, CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                                 THEN quota_used ELSE 0 END AS used, daily_quota
                 FROM api_keys WHERE id IN (SELECT api_key_id FROM r) ORDER BY id FOR UPDATE
             ), accounts_locked AS MATERIALIZED (
                 SELECT id, CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                                 THEN quota_used ELSE 0 END AS used, daily_quota
                 FROM accounts WHERE id IN (SELECT account_id FROM r) ORDER BY id FOR UPDATE
             ), fits AS (
                 SELECT NOT EXISTS (
                            SELECT 1 FROM (SELECT api_key_id, count(*) AS n FROM r
                                           WHERE api_key_id IS NOT NULL GROUP BY 1) c
                            LEFT JOIN keys k ON k.id = c.api_key_id
                            WHERE k.id IS NULL OR k.used + c.n > k.daily_quota)
                    AND NOT EXISTS (
                            SELECT 1 FROM (SELECT account_id, count(*) AS n FROM r GROUP BY 1) c
                            LEFT JOIN accounts_locked a ON a.id = c.account_id
                            WHERE a.id IS NULL OR a.used + c.n > a.daily_quota) AS ok
             ), job AS (
                 INSERT INTO jobs (id, url, tasks, min_score, trace_parent, account_id,
                                   api_key_id, bypass_cache, status, result, error_code,
                                   error_message, webhook_url, started_at, finished_at)
                 SELECT id, url, string_to_array(tasks, ','), min_score, trace_parent,
                        account_id, api_key_id, bypass_cache, status, ($14::jsonb[])[result_index],
                        error_code, error_message, webhook_url, now(), now()
                 FROM r WHERE (SELECT ok FROM fits)
                 ORDER BY ord
                 RETURNING *
             ), key_charge AS (
                 UPDATE api_keys k SET ",
            crate::jobs::charge!("c.n"),
            " FROM (SELECT api_key_id, count(*) AS n FROM job
                       WHERE api_key_id IS NOT NULL GROUP BY 1) c
                 WHERE k.id = c.api_key_id
             ), account_charge AS (
                 UPDATE accounts a SET ",
            crate::jobs::charge!("c.n"),
            " FROM (SELECT account_id, count(*) AS n FROM job GROUP BY 1) c
                 WHERE a.id = c.account_id
             )
             SELECT (SELECT ok FROM fits) AS fits, job.* FROM (SELECT 1) one
             LEFT JOIN (SELECT ",
            // The results are the ones this call sent: not read back.
            crate::jobs::summary_columns!(),
            " FROM job) job ON true"
        ))
        .bind(&columns.id)
        .bind(&columns.url)
        .bind(&columns.tasks)
        .bind(&columns.min_score)
        .bind(&columns.trace_parent)
        .bind(&columns.account)
        .bind(&columns.key)
        .bind(&columns.bypass)
        .bind(&columns.status)
        .bind(&columns.result)
        .bind(&columns.error_code)
        .bind(&columns.error_message)
        .bind(&columns.webhook)
        .bind(&columns.results)
        .fetch_all(&self.pool)
        .await?;
        let fits = match rows.first() {
            Some(row) => sqlx::Row::try_get::<bool, _>(row, "fits")?,
            None => false,
        };
        if !fits {
            return Ok(None);
        }
        let mut records = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let record = decode_job(row)?;
            records.insert(record.id, record);
        }
        jobs.iter()
            .map(|job| {
                let mut record = records.remove(&job.id).ok_or(StoreError::Corrupt {
                    id: job.id.as_uuid(),
                    reason: "an answered job of a group that fits was not recorded".to_owned(),
                })?;
                if let JobAdmission::Answered { result, .. } = &job.admission {
                    record.result = Some(result.clone());
                }
                Ok(record)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The group's jobs, one array per column.
#[derive(Default)]
struct Columns {
    id: Vec<uuid::Uuid>,
    url: Vec<String>,
    tasks: Vec<String>,
    min_score: Vec<f64>,
    trace_parent: Vec<Option<String>>,
    account: Vec<uuid::Uuid>,
    key: Vec<Option<i64>>,
    bypass: Vec<bool>,
    status: Vec<&'static str>,
    /// Each job's result as a (1-based) index into `results`.
    result: Vec<i32>,
    /// The group's distinct results: answers to one viral URL are mostly the same few, and
    /// each is sent once.
    results: Vec<sqlx::types::Json<serde_json::Value>>,
    error_code: Vec<Option<&'static str>>,
    error_message: Vec<Option<String>>,
    webhook: Vec<Option<String>>,
}

impl Columns {
    /// The index of `result` in `results`, added when new.
    fn distinct(&mut self, result: &serde_json::Value) -> i32 {
        let at = match self.results.iter().position(|r| r.0 == *result) {
            Some(at) => at,
            None => {
                self.results.push(sqlx::types::Json(result.clone()));
                self.results.len() - 1
            }
        };
        // Postgres arrays count from 1; a group is far smaller than i32::MAX.
        i32::try_from(at + 1).unwrap_or(i32::MAX)
    }
}
