//! `amqps://` against the real RabbitMQ behind a TLS terminator (as stunnel would be), with a
//! CA made for the test: publish and consume through it; a wrong CA, a wrong server name and
//! a plain-text port are each refused, and nothing is ever sent in clear.

use imgmeta_domain::JobId;
use imgmeta_queue::{Broker, Deliveries, JobMessage, Publisher, QueueError, Topology};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const BROKER: &str = "127.0.0.1:5672";

/// A CA and a server certificate it signed for `localhost` only.
struct Pki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "imgmeta test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_chain: vec![server.der().clone()],
        server_key: key.serialize_der(),
    }
}

/// A TLS terminator on an ephemeral loopback port forwarding to the broker's plain port;
/// counts completed handshakes.
struct Terminator {
    port: u16,
    handshakes: Arc<AtomicUsize>,
}

async fn terminator(pki: &Pki) -> Terminator {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            pki.server_chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(mut upstream) = TcpStream::connect(BROKER).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    Terminator { port, handshakes }
}

fn broker(url: String, ca_pem: &str) -> Broker {
    Broker::new(url.into())
        .with_ca_pem(ca_pem.to_owned())
        .unwrap()
}

fn topology() -> Topology {
    Topology::new(&format!("imgmeta-tls-test-{}", JobId::new()))
}

async fn refused(broker: &Broker) -> String {
    let publisher = Publisher::new(broker, topology()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), publisher.ping())
        .await
        .expect("a refused handshake must fail, not hang")
        .expect_err("the connection must be refused");
    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
    err.to_string()
}

#[tokio::test]
async fn amqps_with_the_right_ca_publishes_and_consumes_through_tls() {
    let pki = pki();
    let tls = terminator(&pki).await;
    let broker = broker(
        format!("amqps://guest:guest@localhost:{}/%2f", tls.port),
        &pki.ca_pem,
    );
    let topology = topology();
    let publisher = Publisher::new(&broker, topology.clone()).unwrap();
    let job_id = JobId::new();
    publisher.publish(&JobMessage { job_id }).await.unwrap();
    let mut deliveries = Deliveries::jobs(&broker, &topology, 1).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("a delivery within 10 s")
        .expect("a delivery")
        .unwrap();
    assert_eq!(delivery.message.as_ref().unwrap().job_id, job_id);
    delivery.ack().await.unwrap();
    assert!(
        tls.handshakes.load(Ordering::SeqCst) >= 2,
        "publisher and consumer each went through the TLS terminator"
    );
    deliveries.close().await;
    publisher.delete_topology().await.unwrap();
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    let pki = pki();
    let tls = terminator(&pki).await;
    let other_ca = ca().pem();
    let err = refused(&broker(
        format!("amqps://guest:guest@localhost:{}/%2f", tls.port),
        &other_ca,
    ))
    .await;
    assert!(err.contains("TLS"), "{err}");
    assert_eq!(tls.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = pki();
    let tls = terminator(&pki).await;
    // The certificate names localhost; 127.0.0.1 is the same host but not the same name.
    let err = refused(&broker(
        format!("amqps://guest:guest@127.0.0.1:{}/%2f", tls.port),
        &pki.ca_pem,
    ))
    .await;
    assert!(err.contains("TLS"), "{err}");
    assert_eq!(tls.handshakes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn amqps_to_a_plain_port_never_falls_back_to_plain_text() {
    let pki = pki();
    // Record what a client sends to a plain listener: a TLS ClientHello starts 0x16 0x03,
    // an AMQP client starts "AMQP".
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        tokio::io::AsyncReadExt::read_exact(&mut socket, &mut buf)
            .await
            .map(|_| buf)
    });
    let err = refused(&broker(
        format!("amqps://guest:guest@localhost:{port}/%2f"),
        &pki.ca_pem,
    ))
    .await;
    assert!(err.contains("TLS"), "{err}");
    let first = first_bytes.await.unwrap().unwrap();
    assert_eq!(&first[..2], &[0x16, 0x03], "a TLS handshake, got {first:?}");

    // And the real broker's plain port does not answer a TLS client either.
    let err = refused(&broker(
        format!("amqps://guest:guest@localhost:{}/%2f", 5672),
        &pki.ca_pem,
    ))
    .await;
    assert!(err.contains("TLS"), "{err}");
}
