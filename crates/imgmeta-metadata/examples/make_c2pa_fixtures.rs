//! Writes the content-credential fixtures under `fixtures/c2pa/`: images signed with the test
//! certificate (`make_test_certs.sh`), a tampered copy, a malformed manifest store, and
//! `expected.json` saying what each was made to carry.
//!
//! Run once, then commit what it wrote:
//! `cargo run -p imgmeta-metadata --example make_c2pa_fixtures`.
//! The signatures differ on every run (C2PA salts and instance ids are random), the
//! expectations do not.

use c2pa::{Builder, Context, SigningAlg, create_signer};
use image::{ImageFormat, RgbImage};
use serde_json::{Value, json};
use std::io::Cursor;
use std::path::{Path, PathBuf};

const GENERATOR: &str = "imgmeta-fixtures";
const GENERATOR_VERSION: &str = "1.0";
const IPTC: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/";

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/c2pa");
    let chain = std::fs::read(dir.join("test_signer_chain.pem")).expect("run make_test_certs.sh");
    let key = std::fs::read(dir.join("test_signer_key.pem")).expect("run make_test_certs.sh");
    let signer = create_signer::from_keys(&chain, &key, SigningAlg::Es256, None).unwrap();
    let mut expected = serde_json::Map::new();

    // A camera-style capture, signed: valid, not AI.
    let capture = [
        action("c2pa.created", "digitalCapture"),
        action_plain("c2pa.color_adjustments"),
    ];
    let signed_jpeg = sign(
        &*signer,
        &picture(ImageFormat::Jpeg),
        "image/jpeg",
        &capture,
    );
    write(&dir, "signed.jpg", &signed_jpeg);
    expected.insert("signed.jpg".into(), expect(true, Some(false), &capture));

    // The same file with one quantisation table entry changed after signing: every pixel
    // decodes differently and the hash binding no longer holds.
    let tampered = tamper_quantisation_table(&signed_jpeg);
    write(&dir, "tampered.jpg", &tampered);
    expected.insert("tampered.jpg".into(), expect(false, Some(false), &capture));

    // Made by a generative model, declared in the manifest's c2pa.created action.
    let generated = [action("c2pa.created", "trainedAlgorithmicMedia")];
    let ai_png = sign(
        &*signer,
        &picture(ImageFormat::Png),
        "image/png",
        &generated,
    );
    write(&dir, "ai_generated.png", &ai_png);
    expected.insert(
        "ai_generated.png".into(),
        expect(true, Some(true), &generated),
    );

    // Digital art made by hand, as a WebP: valid, not AI.
    let drawn = [action("c2pa.created", "digitalCreation")];
    let webp = sign(&*signer, &picture(ImageFormat::WebP), "image/webp", &drawn);
    write(&dir, "signed.webp", &webp);
    expected.insert("signed.webp".into(), expect(true, Some(false), &drawn));

    // A JPEG whose APP11 segment starts a C2PA manifest store and then holds garbage.
    write(
        &dir,
        "garbage_jumbf.jpg",
        &with_garbage_jumbf(&picture(ImageFormat::Jpeg)),
    );
    expected.insert(
        "garbage_jumbf.jpg".into(),
        json!({"present": true, "valid": false}),
    );

    let text = serde_json::to_string_pretty(&Value::Object(expected)).unwrap();
    write(&dir, "expected.json", format!("{text}\n").as_bytes());
}

/// What a reader should find in a fixture signed with the test certificate.
fn expect(valid: bool, ai_generated: Option<bool>, actions: &[Value]) -> Value {
    json!({
        "present": true,
        "valid": valid,
        "trusted": false,
        "claim_generator": format!("{GENERATOR}/{GENERATOR_VERSION}"),
        "signer": "imgmeta test signing",
        "ai_generated": ai_generated,
        "actions": actions.iter().map(|a| json!({
            "action": a["action"],
            "digital_source_type": a.get("digitalSourceType"),
        })).collect::<Vec<_>>(),
    })
}

fn action(label: &str, source_type: &str) -> Value {
    json!({"action": label, "digitalSourceType": format!("{IPTC}{source_type}")})
}

fn action_plain(label: &str) -> Value {
    json!({"action": label})
}

/// A 64×48 gradient in `format`.
fn picture(format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn sign(signer: &dyn c2pa::Signer, source: &[u8], mime: &str, actions: &[Value]) -> Vec<u8> {
    let definition = json!({
        "claim_generator_info": [{"name": GENERATOR, "version": GENERATOR_VERSION}],
        "title": "imgmeta fixture",
        "format": mime,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
    });
    let mut builder = Builder::from_context(Context::new())
        .with_definition(definition.to_string())
        .unwrap();
    let mut out = Cursor::new(Vec::new());
    builder
        .sign(signer, mime, &mut Cursor::new(source), &mut out)
        .unwrap();
    out.into_inner()
}

/// `jpeg` with the first entry of its first quantisation table raised by one.
fn tamper_quantisation_table(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let mut at = 2;
    while at + 4 < out.len() {
        assert_eq!(out[at], 0xff, "a marker at {at}");
        let marker = out[at + 1];
        let length = usize::from(u16::from_be_bytes([out[at + 2], out[at + 3]]));
        if marker == 0xdb {
            // Marker, length, then the table's precision/id byte, then its first entry.
            let entry = at + 5;
            out[entry] = out[entry].wrapping_add(1).max(1);
            return out;
        }
        at += 2 + length;
    }
    panic!("no DQT segment");
}

/// `jpeg` with an APP11 JUMBF segment after SOI whose superbox declares a C2PA manifest store
/// (`jumb` / `jumd` with the C2PA type and label) and then holds bytes that are no box at all.
fn with_garbage_jumbf(jpeg: &[u8]) -> Vec<u8> {
    let c2pa_type = [
        0x63, 0x32, 0x70, 0x61, 0x00, 0x11, 0x00, 0x10, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b,
        0x71,
    ];
    let mut jumd = Vec::new();
    jumd.extend(c2pa_type);
    jumd.push(0x03); // requestable, label present
    jumd.extend(b"c2pa\0");
    let mut description = ((8 + jumd.len()) as u32).to_be_bytes().to_vec();
    description.extend(b"jumd");
    description.extend(jumd);
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    let mut superbox = ((8 + description.len() + garbage.len()) as u32)
        .to_be_bytes()
        .to_vec();
    superbox.extend(b"jumb");
    superbox.extend(description);
    superbox.extend(garbage);
    // APP11 JPEG-XT header: "JP", box instance 1, packet sequence 1.
    let mut payload = b"JP\x00\x01\x00\x00\x00\x01".to_vec();
    payload.extend(superbox);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xff, 0xeb]);
    out.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("wrote {name} ({} bytes)", bytes.len());
}
