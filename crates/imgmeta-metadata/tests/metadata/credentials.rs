//! `result.image.c2pa`: content credentials signed with the test certificate
//! (`fixtures/c2pa/`, written by the `make_c2pa_fixtures` example), a tampered copy, broken
//! and oversized manifest stores, and AI declarations with and without a manifest.

use crate::fixtures::describe_fixture;
use imgmeta_metadata::{DecodeLimits, ImageMetadata, WarningCode, decode, describe};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/c2pa")
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn describe_bytes(bytes: &[u8]) -> ImageMetadata {
    let decoded = decode(bytes, &DecodeLimits::default()).unwrap();
    describe(bytes, &decoded)
}

fn describe_c2pa(name: &str) -> ImageMetadata {
    describe_bytes(&read(name))
}

/// What the generator put into each fixture (`fixtures/c2pa/expected.json`).
fn expected(name: &str) -> Value {
    let all: Value = serde_json::from_slice(&read("expected.json")).unwrap();
    all[name].clone()
}

fn codes(described: &ImageMetadata) -> Vec<WarningCode> {
    described.warnings.iter().map(|w| w.code).collect()
}

#[test]
fn every_signed_fixture_reads_back_what_its_generator_signed() {
    for name in [
        "signed.jpg",
        "signed.webp",
        "ai_generated.png",
        "tampered.jpg",
    ] {
        let described = describe_c2pa(name);
        let ours = serde_json::to_value(&described.c2pa).unwrap();
        let theirs = expected(name);
        for key in [
            "present",
            "valid",
            "trusted",
            "claim_generator",
            "signer",
            "ai_generated",
        ] {
            assert_eq!(ours[key], theirs[key], "{name}: {key}: {ours}");
        }
        let actions: Vec<Value> = ours["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| serde_json::json!({"action": a["action"], "digital_source_type": a["digital_source_type"]}))
            .collect();
        assert_eq!(Value::from(actions), theirs["actions"], "{name}: actions");
        assert!(
            described.warnings.is_empty(),
            "{name}: {:?}",
            described.warnings
        );
    }
}

#[test]
fn a_valid_manifest_has_no_failures_and_is_untrusted_offline() {
    let c2pa = describe_c2pa("signed.jpg").c2pa;
    assert!(c2pa.present);
    assert_eq!(c2pa.valid, Some(true));
    assert!(c2pa.failures.is_empty(), "{:?}", c2pa.failures);
    assert_eq!(c2pa.trusted, Some(false));
    assert_eq!(
        c2pa.claim_generator.as_deref(),
        Some("imgmeta-fixtures/1.0")
    );
    assert_eq!(c2pa.signer.as_deref(), Some("imgmeta test signing"));
    assert!(!c2pa.ai_generated);
    assert_eq!(c2pa.actions[0].action, "c2pa.created");
}

#[test]
fn pixels_changed_after_signing_break_the_hash_binding() {
    let c2pa = describe_c2pa("tampered.jpg").c2pa;
    assert!(c2pa.present);
    assert_eq!(c2pa.valid, Some(false));
    assert!(
        c2pa.failures
            .iter()
            .any(|code| code == "assertion.dataHash.mismatch"),
        "{:?}",
        c2pa.failures
    );
    assert_eq!(c2pa.trusted, Some(false));
    // What the manifest says is still reported.
    assert_eq!(c2pa.signer.as_deref(), Some("imgmeta test signing"));
}

#[test]
fn an_ai_source_type_on_the_created_action_marks_the_image_ai_generated() {
    let c2pa = describe_c2pa("ai_generated.png").c2pa;
    assert_eq!(c2pa.valid, Some(true));
    assert!(c2pa.ai_generated);
    assert!(
        c2pa.actions[0]
            .digital_source_type
            .as_deref()
            .unwrap()
            .ends_with("/trainedAlgorithmicMedia")
    );
}

#[test]
fn an_iptc_ai_declaration_without_a_manifest_marks_the_image_ai_generated() {
    let described = describe_fixture("descriptive_ai.webp");
    assert!(
        described
            .descriptive
            .unwrap()
            .digital_source_type
            .unwrap()
            .ends_with("/trainedAlgorithmicMedia")
    );
    let c2pa = described.c2pa;
    assert!(!c2pa.present);
    assert!(c2pa.ai_generated);
    assert_eq!(c2pa.valid, None);
}

#[test]
fn an_image_without_credentials_reports_none() {
    let value = serde_json::to_value(describe_fixture("scene_q95.jpg")).unwrap();
    assert_eq!(
        value["c2pa"],
        serde_json::json!({
            "present": false,
            "valid": null,
            "failures": [],
            "trusted": null,
            "claim_generator": null,
            "signer": null,
            "ai_generated": false,
            "actions": [],
        })
    );
}

#[test]
fn the_credentials_have_exactly_the_agreed_keys() {
    let value = serde_json::to_value(describe_c2pa("signed.jpg")).unwrap();
    let keys: BTreeSet<&str> = value["c2pa"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let agreed: BTreeSet<&str> = [
        "present",
        "valid",
        "failures",
        "trusted",
        "claim_generator",
        "signer",
        "ai_generated",
        "actions",
    ]
    .into();
    assert_eq!(keys, agreed);
    let action: BTreeSet<&str> = value["c2pa"]["actions"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        action,
        ["action", "digital_source_type", "software_agent"].into()
    );
}

#[test]
fn a_garbage_manifest_store_is_a_warning_and_the_image_is_still_described() {
    let described = describe_c2pa("garbage_jumbf.jpg");
    assert_eq!(
        (described.width, described.height),
        (64, 48),
        "the image itself is described"
    );
    assert!(described.c2pa.present);
    assert_eq!(described.c2pa.valid, Some(false));
    assert_eq!(described.c2pa.failures, ["general.error"]);
    assert_eq!(codes(&described), [WarningCode::C2paUnreadable]);
}

/// `jpeg` with `store` (a JUMBF superbox) split over APP11 segments after SOI, as C2PA
/// embeds it: each segment "JP", a box instance, a sequence number, then the next piece
/// (the box header repeated in every segment after the first).
fn with_app11_store(jpeg: &[u8], store: &[u8]) -> Vec<u8> {
    let header = &store[..8];
    let mut out = jpeg[..2].to_vec();
    let mut rest = &store[8..];
    let mut sequence = 1u32;
    let piece = 60_000;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(rest.len().min(piece));
        let mut payload = b"JP\x00\x01".to_vec();
        payload.extend(sequence.to_be_bytes());
        payload.extend(header);
        payload.extend(now);
        out.extend([0xff, 0xeb]);
        out.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        out.extend(payload);
        rest = later;
        sequence += 1;
    }
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn a_manifest_store_over_4_mib_is_present_but_not_validated() {
    let jpeg = crate::fixtures::bytes("scene_q95.jpg");
    // A C2PA superbox (jumb, then a jumd typed and labelled c2pa) padded past 4 MiB.
    let mut jumd = vec![
        0x63, 0x32, 0x70, 0x61, 0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b,
        0x71, 0x03,
    ];
    jumd.extend(b"c2pa\0");
    let mut body = u32::try_from(8 + jumd.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    body.extend(b"jumd");
    body.extend(&jumd);
    body.resize(body.len() + (4 << 20) + 1024, 0);
    let mut store = u32::try_from(8 + body.len())
        .unwrap()
        .to_be_bytes()
        .to_vec();
    store.extend(b"jumb");
    store.extend(body);

    let started = std::time::Instant::now();
    let described = describe_bytes(&with_app11_store(&jpeg, &store));
    assert!(described.c2pa.present);
    assert_eq!(described.c2pa.valid, None);
    assert_eq!(codes(&described), [WarningCode::MetadataTooLarge]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_manifest_kept_at_a_remote_url_is_never_fetched() {
    use c2pa::{Builder, Context, SigningAlg, create_signer};
    use std::io::{Cursor, ErrorKind};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://{}/c2pa/manifest.c2pa",
        listener.local_addr().unwrap()
    );
    let signer = create_signer::from_keys(
        &read("test_signer_chain.pem"),
        &read("test_signer_key.pem"),
        SigningAlg::Es256,
        None,
    )
    .unwrap();
    let definition = serde_json::json!({
        "claim_generator_info": [{"name": "imgmeta-tests", "version": "1"}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.created",
            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}],
    });
    let mut builder = Builder::from_context(Context::new())
        .with_definition(definition.to_string())
        .unwrap();
    builder.set_remote_url(&url);
    builder.set_no_embed(true);
    let mut out = Cursor::new(Vec::new());
    let source = crate::fixtures::bytes("scene_q95.jpg");
    builder
        .sign(&*signer, "image/jpeg", &mut Cursor::new(source), &mut out)
        .unwrap();
    let jpeg = out.into_inner();
    assert!(
        jpeg.windows(url.len()).any(|w| w == url.as_bytes()),
        "the file points at the remote manifest"
    );

    let described = describe_bytes(&jpeg);
    assert!(!described.c2pa.present);
    assert!(described.warnings.is_empty(), "{:?}", described.warnings);
    let asked = listener.accept();
    assert!(
        matches!(&asked, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "nothing may connect to the manifest's host: {asked:?}"
    );
}
