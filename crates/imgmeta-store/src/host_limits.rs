//! The per-host fetch schedule, shared by every worker process through PostgreSQL: each fetch
//! from a host reserves the next free slot, `interval` after the previous one.

use crate::{Store, StoreError};
use std::time::Duration;

impl Store {
    /// Reserves the next fetch slot for `host` and returns how long to wait before starting it
    /// (zero when the host is idle). One atomic upsert, so concurrent workers on any number of
    /// hosts get distinct slots and the host never sees more than one fetch per `interval`.
    pub async fn reserve_host_slot(
        &self,
        host: &str,
        interval: Duration,
    ) -> Result<Duration, StoreError> {
        let wait_secs: f64 = sqlx::query_scalar(
            "INSERT INTO host_slots AS s (host, next_at) VALUES ($1, clock_timestamp() + $2)
             ON CONFLICT (host) DO UPDATE SET next_at = greatest(s.next_at, clock_timestamp()) + $2
             RETURNING extract(epoch FROM s.next_at - $2 - clock_timestamp())::float8",
        )
        .bind(host)
        .bind(interval)
        .fetch_one(&self.pool)
        .await?;
        Ok(Duration::from_secs_f64(wait_secs.max(0.0)))
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
}
