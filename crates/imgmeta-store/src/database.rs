//! Connecting, creating the database if missing, and running migrations.

use crate::StoreError;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Pools of connections to the jobs database: one for everything, and a small one that only
/// the status reads use, so that a burst of submissions holding every connection of the
/// first cannot queue a client's poll behind it.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: PgPool,
    pub(crate) reads: PgPool,
    /// Raised after this process commits rows to the outbox, so its relay publishes them at
    /// once instead of at its next poll (shared by every clone of the store).
    pub(crate) outbox_wake: Arc<Notify>,
}

impl Store {
    /// Opens a pool; connections are made lazily so a process can start while the database
    /// is still coming up, and `/readyz` reports it.
    /// The status-read pool has a quarter as many connections as `max_connections` (at
    /// least 2) on top of them.
    pub fn connect_lazy(url: &SecretString, max_connections: u32) -> Result<Self, StoreError> {
        let options = connect_options(url)?;
        Ok(Self {
            pool: lazy_pool(&options, max_connections),
            reads: lazy_pool(&options, (max_connections / 4).max(2)),
            outbox_wake: Arc::default(),
        })
    }

    /// Tells this process's relay that the outbox has new rows (after their commit). Rows
    /// committed by other processes are found by the relay's polling.
    pub(crate) fn outbox_written(&self) {
        self.outbox_wake.notify_one();
    }

    /// Resolves when this process has committed rows to the outbox since the last call (a
    /// signal raised while nobody waited is kept for the next waiter).
    pub async fn outbox_signalled(&self) {
        self.outbox_wake.notified().await;
    }

    /// The same database through a pool of its own of `connections`, for a task that must
    /// not queue behind requests for the shared pool (status reads keep sharing theirs).
    pub fn with_own_pool(&self, connections: u32) -> Self {
        Self {
            pool: lazy_pool(&self.pool.connect_options(), connections.max(1)),
            reads: self.reads.clone(),
            outbox_wake: self.outbox_wake.clone(),
        }
    }

    /// Applies the migrations in `migrations/`; safe to run from several processes at once
    /// (sqlx serialises them with an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Applies only the migrations up to and including `version`: how tests build a database
    /// of an earlier schema to check that upgrading it keeps its data.
    pub async fn migrate_up_to(&self, version: i64) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("../../migrations");
        migrator.migrations = std::borrow::Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        );
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers with a schema this binary can use: every migration it
    /// knows of applied (a newer schema, during a rolling upgrade, is fine).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::NotMigrated(_) => {
                        StoreError::NotMigrated("no migrations applied".into())
                    }
                    other => other,
                })?;
        let needed = sqlx::migrate!("../../migrations")
            .migrations
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        match applied {
            Some(version) if version >= needed => Ok(()),
            Some(version) => Err(StoreError::NotMigrated(format!(
                "schema version {version}, this binary needs {needed}"
            ))),
            None => Err(StoreError::NotMigrated("no migrations applied".into())),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.reads.close().await;
    }
}

/// A pool of up to `max` connections, made when first needed.
fn lazy_pool(options: &PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .connect_lazy_with(options.clone())
}

fn connect_options(url: &SecretString) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url.expose_secret())
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        .log_statements(tracing::log::LevelFilter::Trace)
        .application_name("imgmeta"))
}

/// Creates the database named in `url` if it does not exist yet, connecting to the server's
/// `postgres` maintenance database to do so.
pub async fn ensure_database(url: &SecretString) -> Result<(), StoreError> {
    let parsed =
        url::Url::parse(url.expose_secret()).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty() {
        return Err(StoreError::InvalidUrl(
            "the database url names no database".into(),
        ));
    }
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let admin_options = connect_options(&admin.as_str().to_owned().into())?;
    let mut conn = admin_options.connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match // The name is quoted as an identifier above; CREATE DATABASE takes no bind parameters.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}"))).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await.ok();
    Ok(())
}
