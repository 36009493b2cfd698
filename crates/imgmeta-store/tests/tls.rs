//! TLS to the real PostgreSQL on this machine, which serves Debian's snakeoil certificate
//! (self-signed, for the name `localhost`): verified with it as the CA, refused with any other
//! CA and, under `verify-full`, for a name the certificate does not carry.

use imgmeta_store::{Store, StoreError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sqlx::Connection;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn url(host: &str, mode: &str, ca: &str) -> String {
    format!("postgres://postgres@{host}:5432/postgres?sslmode={mode}&sslrootcert={ca}")
}

fn snakeoil() -> &'static str {
    assert!(
        std::fs::metadata(SNAKEOIL).is_ok(),
        "{SNAKEOIL} is missing: this test needs the machine's PostgreSQL to serve TLS with it"
    );
    SNAKEOIL
}

/// Connects, and answers whether the session is encrypted.
async fn encrypted(url: &str) -> Result<bool, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(ssl)
}

/// What the store says when it cannot connect.
async fn store_refusal(url: &str) -> String {
    let store = Store::connect_lazy(&url.to_owned().into(), 1).unwrap();
    let err = store
        .ping()
        .await
        .expect_err("the connection must be refused");
    assert!(matches!(err, StoreError::Tls(_)), "{err:?}");
    assert!(err.is_retryable());
    err.to_string()
}

#[tokio::test]
async fn verify_ca_with_the_servers_ca_connects_encrypted() {
    let ca = snakeoil();
    assert!(encrypted(&url("127.0.0.1", "verify-ca", ca)).await.unwrap());
}

#[tokio::test]
async fn verify_full_checks_the_name() {
    let ca = snakeoil();
    assert!(
        encrypted(&url("localhost", "verify-full", ca))
            .await
            .unwrap()
    );
    let err = store_refusal(&url("127.0.0.1", "verify-full", ca)).await;
    assert!(err.contains("TLS"), "{err}");
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    snakeoil();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let path = std::env::temp_dir().join(format!("imgmeta-wrong-ca-{}.pem", std::process::id()));
    std::fs::write(&path, other.pem()).unwrap();
    let ca = path.to_str().unwrap();
    for (host, mode) in [("127.0.0.1", "verify-ca"), ("localhost", "verify-full")] {
        let err = store_refusal(&url(host, mode, ca)).await;
        assert!(err.contains("TLS"), "{mode}: {err}");
    }
    let _ = std::fs::remove_file(path);
}
