//! TLS to PostgreSQL and RabbitMQ: the operator's CA files, checked at start-up.
//!
//! `IMGMETA_DATABASE_CA` becomes the URL's `sslrootcert` (which sqlx honours), with an
//! `sslmode` that verifies: absent → `verify-full`, `require` → `verify-ca` (libpq's own rule
//! when a root certificate is present), `verify-*` kept; `disable`, `allow` and `prefer`
//! contradict a CA and are refused. `IMGMETA_AMQP_CA` is read into memory and needs an
//! `amqps://` URL.

use crate::ConfigError;
use std::path::Path;

/// A PEM file's text, refused when unreadable or holding no certificate.
fn read_pem(var: &'static str, path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| ConfigError {
        var,
        reason: format!("cannot read {path}: {e}"),
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError {
            var,
            reason: format!("{path} holds no PEM certificate"),
        });
    }
    Ok(text)
}

/// The database URL with `ca` (a path, when `IMGMETA_DATABASE_CA` is set) applied.
pub(crate) fn database_url(mut url: url::Url, ca: Option<&str>) -> Result<String, ConfigError> {
    let Some(ca) = ca else {
        return Ok(url.to_string());
    };
    const VAR: &str = "IMGMETA_DATABASE_CA";
    read_pem(VAR, ca)?;
    let mut mode = None;
    let mut rest = Vec::new();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" => mode = Some(value.into_owned()),
            "sslrootcert" | "ssl-root-cert" => {
                return Err(ConfigError {
                    var: VAR,
                    reason:
                        "the database URL already names an sslrootcert: set only one of the two"
                            .into(),
                });
            }
            _ => rest.push((key.into_owned(), value.into_owned())),
        }
    }
    let mode = match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => "verify-full",
        Some("require") => "verify-ca",
        Some("verify-ca") => "verify-ca",
        Some("verify-full") => "verify-full",
        Some(other) => {
            return Err(ConfigError {
                var: VAR,
                reason: format!(
                    "a CA is set but IMGMETA_DATABASE_URL has sslmode={other}, which allows a \
                     connection without TLS: use verify-full, verify-ca or require"
                ),
            });
        }
    };
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (key, value) in &rest {
            query.append_pair(key, value);
        }
        query.append_pair("sslmode", mode);
        query.append_pair("sslrootcert", ca);
    }
    Ok(url.to_string())
}

/// The broker CA's PEM text, when `IMGMETA_AMQP_CA` is set; it needs an `amqps://` URL.
pub(crate) fn amqp_ca(url: &url::Url, ca: Option<&str>) -> Result<Option<String>, ConfigError> {
    const VAR: &str = "IMGMETA_AMQP_CA";
    let Some(ca) = ca else { return Ok(None) };
    if url.scheme() != "amqps" {
        return Err(ConfigError {
            var: VAR,
            reason: "a CA is set but IMGMETA_AMQP_URL is amqp://: use amqps:// for TLS".into(),
        });
    }
    read_pem(VAR, ca).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_file() -> tempfile_like::Pem {
        tempfile_like::Pem::new()
    }

    /// A throwaway PEM file under the system temp directory.
    mod tempfile_like {
        pub struct Pem(pub std::path::PathBuf);
        impl Pem {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "imgmeta-config-ca-{}-{:?}.pem",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::write(
                    &path,
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                )
                .unwrap();
                Self(path)
            }
            pub fn path(&self) -> &str {
                self.0.to_str().unwrap()
            }
        }
        impl Drop for Pem {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn db(url: &str, ca: Option<&str>) -> Result<String, ConfigError> {
        database_url(url::Url::parse(url).unwrap(), ca)
    }

    #[test]
    fn no_ca_leaves_the_url_alone() {
        let url = "postgres://u@h:5432/db?sslmode=require";
        assert_eq!(db(url, None).unwrap(), url);
    }

    #[test]
    fn a_ca_makes_the_connection_verify() {
        let pem = ca_file();
        let out = db("postgres://u@h/db?application_name=x", Some(pem.path())).unwrap();
        let parsed = url::Url::parse(&out).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("application_name".into(), "x".into())));
        assert!(pairs.contains(&("sslmode".into(), "verify-full".into())));
        assert!(pairs.contains(&("sslrootcert".into(), pem.path().into())));

        let out = db("postgres://u@h/db?sslmode=require", Some(pem.path())).unwrap();
        assert!(out.contains("sslmode=verify-ca"), "{out}");
        let out = db("postgres://u@h/db?sslmode=verify-ca", Some(pem.path())).unwrap();
        assert!(out.contains("sslmode=verify-ca"), "{out}");
    }

    #[test]
    fn a_ca_with_a_mode_that_allows_plain_text_is_refused() {
        let pem = ca_file();
        for mode in ["disable", "allow", "prefer"] {
            let err = db(
                &format!("postgres://u@h/db?sslmode={mode}"),
                Some(pem.path()),
            )
            .unwrap_err();
            assert_eq!(err.var, "IMGMETA_DATABASE_CA");
            assert!(err.reason.contains(mode), "{}", err.reason);
        }
        assert!(db("postgres://u@h/db?sslrootcert=/x.pem", Some(pem.path())).is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_refused() {
        let err = db("postgres://u@h/db", Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.reason.contains("cannot read"), "{}", err.reason);
        let path = std::env::temp_dir().join(format!("imgmeta-empty-{}.pem", std::process::id()));
        std::fs::write(&path, "hello").unwrap();
        let err = db("postgres://u@h/db", Some(path.to_str().unwrap())).unwrap_err();
        assert!(err.reason.contains("no PEM certificate"), "{}", err.reason);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_broker_ca_needs_amqps() {
        let pem = ca_file();
        let plain = url::Url::parse("amqp://g:g@h/%2f").unwrap();
        assert!(amqp_ca(&plain, Some(pem.path())).is_err());
        assert_eq!(amqp_ca(&plain, None).unwrap(), None);
        let tls = url::Url::parse("amqps://g:g@h/%2f").unwrap();
        assert!(
            amqp_ca(&tls, Some(pem.path()))
                .unwrap()
                .unwrap()
                .contains("BEGIN")
        );
    }
}
