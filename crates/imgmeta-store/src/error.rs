//! The store's error type and how it maps onto the stable error codes.

use imgmeta_domain::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The TLS handshake failed: an unknown CA, a certificate for another name, no TLS at
    /// the server. Retried like any outage (a certificate may be rotated), but named.
    #[error("database unavailable: TLS handshake failed: {0}")]
    Tls(String),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("stored job {id} is corrupt: {reason}")]
    Corrupt { id: uuid::Uuid, reason: String },
    #[error("stored api key {id} is corrupt: {reason}")]
    CorruptKey { id: i64, reason: String },
    #[error("no such account")]
    NoSuchAccount,
    /// A new job whose input does not match its source (an upload without its bytes, bytes
    /// for a URL job, or bytes of another digest): a bug in the caller, refused before SQL.
    #[error("job {0}: the input does not match the job's source")]
    MismatchedInput(uuid::Uuid),
    /// The database is missing or its schema is older than this binary's.
    #[error("database not migrated ({0}): run `imgmeta migrate`")]
    NotMigrated(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) | Self::Tls(_) | Self::NotMigrated(_) => {
                ErrorCode::ServiceUnavailable
            }
            Self::NoSuchAccount => ErrorCode::AccountNotFound,
            _ => ErrorCode::Internal,
        }
    }

    /// Connection-level failures are worth retrying; a bad query is a bug.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Tls(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Tls(inner) => Self::Tls(inner.to_string()),
            sqlx::Error::Io(io)
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
            {
                Self::Tls(io.to_string())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // Admin shutdown, connection failure, cannot connect now, serialization/deadlock.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
                }) =>
            {
                Self::Unavailable(err)
            }
            // No such database, table or column: the schema is not (fully) migrated.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c == "3D000" || c == "42P01" || c == "42703") =>
            {
                Self::NotMigrated(db.message().to_owned())
            }
            _ => Self::Query(err),
        }
    }
}
