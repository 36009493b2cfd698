//! Where the broker is and how to trust it: the AMQP URL, TLS for `amqps://`, and the
//! connection pool the publisher draws from.
//!
//! `amqps://` is always TLS (rustls; the Mozilla roots plus an optional CA of the operator's,
//! server name checked against the URL's host). Nothing here can turn an `amqps` URL into a
//! plain connection: the scheme alone decides, and a failed handshake is an error.

use crate::QueueError;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties, DefaultConnectionBuilder};
use secrecy::{ExposeSecret, SecretString};

/// The broker's address and the TLS trust to connect to it with.
#[derive(Clone)]
pub struct Broker {
    url: SecretString,
    ca_pem: Option<String>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("tls", &self.is_tls())
            .field("custom_ca", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker at `url` (`amqp://` or `amqps://`), trusting the public roots for `amqps`.
    pub fn new(url: SecretString) -> Self {
        Self { url, ca_pem: None }
    }

    /// Also trusts the PEM certificates in `ca_pem` (a private CA, as managed brokers and
    /// in-house PKI use). A CA with a plain `amqp://` URL is refused: the operator asked for
    /// TLS and would not get it.
    pub fn with_ca_pem(mut self, ca_pem: String) -> Result<Self, QueueError> {
        if !self.is_tls() {
            return Err(QueueError::Config(
                "a broker CA was given but the URL is amqp://, not amqps://".into(),
            ));
        }
        if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(QueueError::Config(
                "the broker CA holds no PEM certificate".into(),
            ));
        }
        self.ca_pem = Some(ca_pem);
        Ok(self)
    }

    /// Whether connections are TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.url
            .expose_secret()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("amqps://"))
    }

    /// Opens a connection; TLS failures name themselves in the error.
    pub async fn connect(
        &self,
        properties: ConnectionProperties,
    ) -> Result<Connection, QueueError> {
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.clone(),
        };
        DefaultConnectionBuilder::new()?
            .with_uri_str(self.url.expose_secret().to_owned())
            .with_properties(properties)
            .with_tls_config(tls)
            .connect()
            .await
            .map_err(|err| {
                let text = err.to_string();
                if let QueueError::NotReady(_) = QueueError::from(err) {
                    QueueError::NotReady(text)
                } else if self.is_tls() {
                    QueueError::Unavailable(format!("TLS connection to the broker failed: {text}"))
                } else {
                    QueueError::Unavailable(text)
                }
            })
    }
}

/// deadpool's manager for broker connections (deadpool-lapin's own cannot pass a TLS
/// configuration): create connects through [`Broker::connect`], recycle drops dead ones.
pub(crate) struct Manager {
    pub(crate) broker: Broker,
}

impl deadpool::managed::Manager for Manager {
    type Type = Connection;
    type Error = QueueError;

    async fn create(&self) -> Result<Connection, QueueError> {
        self.broker.connect(ConnectionProperties::default()).await
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<QueueError> {
        if connection.status().connected() {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(
                "the broker connection is closed",
            ))
        }
    }
}

pub(crate) type Pool = deadpool::managed::Pool<Manager>;

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn scheme_decides_tls() {
        assert!(Broker::new("amqps://h/%2f".to_owned().into()).is_tls());
        assert!(Broker::new("AMQPS://h/%2f".to_owned().into()).is_tls());
        assert!(!Broker::new("amqp://h/%2f".to_owned().into()).is_tls());
    }

    #[test]
    fn a_ca_needs_amqps_and_a_certificate() {
        let plain = Broker::new("amqp://h/%2f".to_owned().into());
        assert!(matches!(
            plain.with_ca_pem(PEM.into()),
            Err(QueueError::Config(_))
        ));
        let tls = Broker::new("amqps://h/%2f".to_owned().into());
        assert!(matches!(
            tls.clone().with_ca_pem("not a pem".into()),
            Err(QueueError::Config(_))
        ));
        assert!(tls.with_ca_pem(PEM.into()).is_ok());
    }
}
