//! The per-host fetch schedule, shared by every worker process through PostgreSQL: each fetch
//! from a host reserves the next free slot, `interval` after the previous one; and deferring a
//! job whose host is busy, without spending one of its attempts.

use crate::{Store, StoreError};
use imgmeta_domain::{ErrorBody, JobId};
use std::time::Duration;

impl Store {
    /// Reserves the next fetch slot for `host` if it starts within `max_wait`, and returns
    /// `Ok(wait)`, how long to wait before starting it (zero when the host is idle). Otherwise
    /// reserves nothing and returns `Err(free_in)`, how long until the schedule is free.
    ///
    /// One atomic upsert, so concurrent workers on any number of hosts get distinct slots and
    /// the host never sees more than one fetch per `interval`. Refused callers take no slot, so
    /// the schedule never runs more than `max_wait` plus one `interval` ahead.
    pub async fn reserve_host_slot(
        &self,
        host: &str,
        interval: Duration,
        max_wait: Duration,
    ) -> Result<Result<Duration, Duration>, StoreError> {
        let reserved: Option<f64> = sqlx::query_scalar(
            "INSERT INTO host_slots AS s (host, next_at) VALUES ($1, clock_timestamp() + $2)
             ON CONFLICT (host) DO UPDATE SET next_at = greatest(s.next_at, clock_timestamp()) + $2
                 WHERE s.next_at <= clock_timestamp() + $3
             RETURNING extract(epoch FROM s.next_at - $2 - clock_timestamp())::float8",
        )
        .bind(host)
        .bind(micros(interval))
        .bind(micros(max_wait))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(wait_secs) = reserved {
            return Ok(Ok(secs(wait_secs)));
        }
        // Read after the refusal: other workers may have moved the schedule on meanwhile, and a
        // row pruned in between means the host is free now.
        let free_in: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM next_at - clock_timestamp())::float8
             FROM host_slots WHERE host = $1",
        )
        .bind(host)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Err(secs(free_in.unwrap_or(0.0))))
    }

    /// Forgets hosts not fetched from for `idle`, so the table stays as small as the set of
    /// hosts in recent use.
    pub async fn forget_idle_hosts(&self, idle: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM host_slots WHERE next_at < clock_timestamp() - $1")
            .bind(idle)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Ends run `attempt`, which found its image host busy, and schedules another run after
    /// `delay`, as `retry_later` does, except that the run is not counted among the job's
    /// attempts while the job is younger than `free_for`: waiting for a host is no fault of the
    /// job's. Past `free_for` each deferral counts, so a job whose host is never free still ends
    /// after its attempts are spent. False when that run no longer owns the job.
    pub async fn defer_for_host(
        &self,
        id: JobId,
        attempt: i32,
        error: &ErrorBody,
        delay: Duration,
        free_for: Duration,
    ) -> Result<bool, StoreError> {
        self.requeue(id, attempt, error, delay, Some(micros(free_for)))
            .await
    }
}

/// Whole microseconds: PostgreSQL intervals have no finer precision and sqlx refuses to encode
/// a `Duration` with nanoseconds, which `1 / rate` and measured waits usually have.
fn micros(duration: Duration) -> Duration {
    Duration::from_micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

fn secs(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.0))
}
