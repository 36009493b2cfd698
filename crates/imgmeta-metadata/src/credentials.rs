//! `result.image.c2pa`: the file's C2PA content credentials, read and validated offline with
//! the `c2pa` crate, and whether the file declares itself AI-generated.
//!
//! Decisions worth knowing:
//! - Offline, always: the crate is built without any HTTP client feature, and the settings
//!   below turn off remote manifests, OCSP fetches and trust in anything but what we pass
//!   (nothing). So a manifest that lives only at a remote URL reads as absent, and
//!   revocation is not checked.
//! - `valid` is whether the signature and the hash binding hold (the manifest's claim is
//!   signed by its certificate, and the bytes it hashes are the file's bytes); `failures`
//!   lists the C2PA specification's validation codes when they do not
//!   (`assertion.dataHash.mismatch`, `claimSignature.mismatch`, …), as the crate reports
//!   them, each once. `trusted` is whether the signing certificate chains to a trust
//!   anchor: with no trust list offline it is always `false`, and `signingCredential.untrusted`
//!   or `timeStamp.untrusted` does not make a manifest invalid.
//! - `signer` is the signing certificate's subject organisation (what the crate and the
//!   Content Credentials tools call the issuer), else its common name.
//! - `ai_generated` is true when the active manifest has a `c2pa.created` or `c2pa.edited`
//!   action whose `digitalSourceType` is an AI type, or when the IPTC `DigitalSourceType` of
//!   the descriptive metadata is one (so a file with no manifest is still flagged). AI types:
//!   `trainedAlgorithmicMedia`, `compositeWithTrainedAlgorithmicMedia`,
//!   `compositeSynthetic` and `algorithmicMedia` (made by an algorithm rather than captured;
//!   the terms themselves are reported, for a client that wants the narrower meaning).
//! - Bounded: a manifest store over 4 MiB is not validated (`metadata_too_large`), a
//!   Brotli-compressed one is not inflated past 8 MiB, and a read that outlives 5 s stops at
//!   the crate's next checkpoint (`c2pa_unreadable`). A store that cannot be parsed is
//!   `present`, not `valid`, with a `c2pa_unreadable` warning; it never fails the job.

use crate::bounded::cut;
use crate::warnings::{Warning, WarningCode};
use c2pa::{Context, Reader, Settings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Largest manifest store validated; a larger one is reported present but not checked.
const MAX_STORE_BYTES: usize = 4 << 20;
/// Largest Brotli-inflated manifest the crate may build, in its unit (MiB).
const MAX_INFLATED_MANIFEST_MIB: u64 = 8;
/// How long a read and validation may take, checked between the crate's stages.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most actions reported; a longer list keeps its first 32 and lists `actions` as truncated.
const MAX_ACTIONS: usize = 32;

/// The validation codes that say "not on a trust list" rather than "broken": the signing
/// certificate's, and a time-stamp authority's.
const UNTRUSTED: [&str; 2] = ["signingCredential.untrusted", "timeStamp.untrusted"];

/// IPTC digital source types (the last segment of the term's IRI) that declare an image made
/// or altered by AI.
const AI_SOURCE_TYPES: [&str; 4] = [
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "compositeSynthetic",
    "algorithmicMedia",
];

/// `result.image.c2pa`. Every key is present; the manifest's keys are `null` (`actions`
/// `[]`) when the file carries no manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentCredentials {
    /// Whether the file embeds a C2PA manifest store.
    pub present: bool,
    /// Whether its signature and hash binding hold; `null` when there is no manifest or it
    /// was not checked (too large, too slow).
    pub valid: Option<bool>,
    /// The C2PA validation codes that made it invalid, each once, in the crate's order; `[]`
    /// when valid.
    #[serde(default)]
    pub failures: Vec<String>,
    /// Whether the signing certificate chains to a trust anchor: always `false` offline,
    /// where there is no trust list; `null` without a manifest.
    pub trusted: Option<bool>,
    /// The software that made the manifest: the claim's generator, else the first
    /// `claim_generator_info` as `name/version`.
    pub claim_generator: Option<String>,
    /// The signing certificate's subject organisation, else its common name.
    pub signer: Option<String>,
    /// An AI source type in a `c2pa.created` / `c2pa.edited` action or in the IPTC
    /// `DigitalSourceType`.
    pub ai_generated: bool,
    /// The active manifest's actions, in order, at most 32.
    #[serde(default)]
    pub actions: Vec<CredentialAction>,
    /// Keys whose value was cut (a text past 256 characters, more than 32 actions); left
    /// out when nothing was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
}

/// One entry of `c2pa.actions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialAction {
    /// The action's label, such as `c2pa.created`, `c2pa.edited`, `c2pa.color_adjustments`.
    pub action: String,
    /// Its `digitalSourceType` as written (an IPTC or C2PA term's IRI), when it has one.
    pub digital_source_type: Option<String>,
    /// The name of the software agent that performed it, when given.
    pub software_agent: Option<String>,
}

/// Reads the content credentials of `bytes`, a file of type `mime`, and combines them with
/// the descriptive metadata's `digital_source_type`. Never fails: what could not be read is
/// a warning.
pub(crate) fn read_credentials(
    bytes: &[u8],
    mime: &str,
    digital_source_type: Option<&str>,
    warnings: &mut Vec<Warning>,
) -> ContentCredentials {
    let mut credentials = match manifest_store(bytes, mime, warnings) {
        Store::Absent => ContentCredentials::default(),
        Store::Unchecked => ContentCredentials {
            present: true,
            ..ContentCredentials::default()
        },
        Store::Found(store) => validate(&store, bytes, mime, warnings),
    };
    credentials.ai_generated |= digital_source_type.is_some_and(is_ai_source_type);
    credentials
}

enum Store {
    Absent,
    /// Present but too large to validate.
    Unchecked,
    Found(Vec<u8>),
}

/// The file's manifest store as the crate finds it in the container.
fn manifest_store(bytes: &[u8], mime: &str, warnings: &mut Vec<Warning>) -> Store {
    // Every manifest store is a JUMBF box labelled "c2pa" (and typed by a UUID starting with
    // those bytes): a file without them has none, and most files are skipped in one scan.
    if memchr::memmem::find(bytes, b"c2pa").is_none()
        || !Reader::supported_mime_types().iter().any(|m| m == mime)
    {
        return Store::Absent;
    }
    match c2pa::jumbf_io::load_jumbf_from_stream(mime, &mut Cursor::new(bytes)) {
        Ok(store) if store.len() > MAX_STORE_BYTES => {
            warnings.push(Warning::new(
                WarningCode::MetadataTooLarge,
                format!(
                    "the C2PA manifest store is {} bytes, over the {MAX_STORE_BYTES} validated",
                    store.len()
                ),
            ));
            Store::Unchecked
        }
        Ok(store) => Store::Found(store),
        Err(c2pa::Error::JumbfNotFound) => Store::Absent,
        Err(error) => {
            warnings.push(Warning::new(
                WarningCode::C2paUnreadable,
                format!("the file could not be searched for a C2PA manifest store: {error}"),
            ));
            Store::Absent
        }
    }
}

/// The crate's settings, built once: validation on, everything that would reach the network
/// off.
fn settings() -> Result<Settings, String> {
    static SETTINGS: OnceLock<Result<Settings, String>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| offline_settings().map_err(|error| error.to_string()))
        .clone()
}

fn offline_settings() -> Result<Settings, c2pa::Error> {
    Settings::new()
        .with_value("verify.verify_after_reading", true)?
        .with_value("verify.remote_manifest_fetch", false)?
        .with_value("verify.ocsp_fetch", false)?
        .with_value("verify.verify_trust", true)?
        .with_value("verify.verify_timestamp_trust", true)?
        // An empty allow-list: no host may be asked anything, whatever a resolver is built.
        .with_value("core.allowed_network_hosts", Vec::<Value>::new())?
        .with_value(
            "core.max_decompressed_manifest_size_in_mb",
            MAX_INFLATED_MANIFEST_MIB,
        )?
        .with_value("core.decode_identity_assertions", false)
}

fn validate(
    store: &[u8],
    bytes: &[u8],
    mime: &str,
    warnings: &mut Vec<Warning>,
) -> ContentCredentials {
    let present_invalid = |failures: Vec<String>| ContentCredentials {
        present: true,
        valid: Some(false),
        failures,
        trusted: Some(false),
        ..ContentCredentials::default()
    };
    let deadline = Instant::now() + READ_TIMEOUT;
    let configured = settings().and_then(|s| {
        Context::new()
            .with_settings(s)
            .map_err(|error| error.to_string())
    });
    let context = match configured {
        Ok(context) => context.with_progress_callback(move |_, _, _| Instant::now() < deadline),
        Err(error) => {
            warnings.push(Warning::new(
                WarningCode::C2paUnreadable,
                format!("the C2PA reader could not be configured: {error}"),
            ));
            return ContentCredentials {
                present: true,
                ..ContentCredentials::default()
            };
        }
    };
    let read = Reader::from_context(context).with_manifest_data_and_stream(
        store,
        mime,
        Cursor::new(bytes),
    );
    let reader = match read {
        Ok(reader) => reader,
        Err(c2pa::Error::OperationCancelled) => {
            warnings.push(Warning::new(
                WarningCode::C2paUnreadable,
                format!(
                    "validating the C2PA manifest store took longer than {} s",
                    READ_TIMEOUT.as_secs()
                ),
            ));
            return ContentCredentials {
                present: true,
                ..ContentCredentials::default()
            };
        }
        Err(error) => {
            warnings.push(Warning::new(
                WarningCode::C2paUnreadable,
                format!("the C2PA manifest store could not be read: {error}"),
            ));
            return present_invalid(vec![manifest_code(&error).to_owned()]);
        }
    };
    describe_manifest(&reader)
}

/// The C2PA validation code for a store the crate refused outright, which it does not give
/// itself: a claim that is absent or not well-formed, else the specification's catch-all.
fn manifest_code(error: &c2pa::Error) -> &'static str {
    match error {
        c2pa::Error::ClaimMissing { .. } => "claim.missing",
        c2pa::Error::InvalidClaim(_) => "claim.malformed",
        _ => "general.error",
    }
}

fn describe_manifest(reader: &Reader) -> ContentCredentials {
    let mut untrusted = false;
    let mut failures: Vec<String> = Vec::new();
    for status in reader.validation_status().unwrap_or_default() {
        let code = status.code();
        if UNTRUSTED.contains(&code) {
            untrusted = true;
        } else if !failures.iter().any(|seen| seen == code) {
            // The crate reports a code once per place it applies (each ingredient); the
            // result lists each once.
            failures.push(code.to_owned());
        }
    }
    let mut truncated = Vec::new();
    let Some(manifest) = reader.active_manifest() else {
        return ContentCredentials {
            present: true,
            valid: Some(false),
            failures: if failures.is_empty() {
                vec!["claim.missing".to_owned()]
            } else {
                failures
            },
            trusted: Some(false),
            ..ContentCredentials::default()
        };
    };
    let claim_generator = manifest.claim_generator().map(str::to_owned).or_else(|| {
        let info = manifest.claim_generator_info.as_ref()?.first()?;
        Some(match &info.version {
            Some(version) => format!("{}/{version}", info.name),
            None => info.name.clone(),
        })
    });
    let claim_generator = bounded("claim_generator", claim_generator, &mut truncated);
    let signer = bounded(
        "signer",
        manifest.issuer().or_else(|| manifest.common_name()),
        &mut truncated,
    );
    let mut actions = Vec::new();
    let mut ai_generated = false;
    for action in manifest_actions(manifest) {
        let makes_content = matches!(action.action.as_str(), "c2pa.created" | "c2pa.edited");
        ai_generated |= makes_content
            && action
                .digital_source_type
                .as_deref()
                .is_some_and(is_ai_source_type);
        if actions.len() == MAX_ACTIONS {
            mark(&mut truncated, "actions");
            continue;
        }
        actions.push(CredentialAction {
            action: bounded("actions", Some(action.action), &mut truncated).unwrap_or_default(),
            digital_source_type: bounded("actions", action.digital_source_type, &mut truncated),
            software_agent: bounded("actions", action.software_agent, &mut truncated),
        });
    }
    let valid = failures.is_empty();
    ContentCredentials {
        present: true,
        valid: Some(valid),
        failures,
        trusted: Some(valid && !untrusted),
        claim_generator,
        signer,
        ai_generated,
        actions,
        truncated,
    }
}

/// `value` cut to 256 characters; a cut marks `key` in `truncated`.
fn bounded(key: &str, value: Option<String>, truncated: &mut Vec<String>) -> Option<String> {
    let value = value?;
    let (kept, was_cut) = cut(&value);
    if was_cut {
        mark(truncated, key);
    }
    Some(kept.to_owned())
}

fn mark(truncated: &mut Vec<String>, key: &str) {
    if !truncated.iter().any(|k| k == key) {
        truncated.push(key.to_owned());
    }
}

/// The actions of every `c2pa.actions` assertion of `manifest`, read from their JSON so
/// that an action the crate's types do not know is still reported.
fn manifest_actions(manifest: &c2pa::Manifest) -> Vec<CredentialAction> {
    let mut out = Vec::new();
    for assertion in manifest.assertions() {
        if !assertion.label().starts_with("c2pa.actions") {
            continue;
        }
        let Ok(value) = assertion.value() else {
            continue;
        };
        let Some(list) = value.get("actions").and_then(Value::as_array) else {
            continue;
        };
        for action in list {
            let Some(label) = action.get("action").and_then(Value::as_str) else {
                continue;
            };
            let software_agent = match action.get("softwareAgent") {
                Some(Value::String(name)) => Some(name.clone()),
                Some(agent) => agent.get("name").and_then(Value::as_str).map(str::to_owned),
                None => None,
            };
            out.push(CredentialAction {
                action: label.to_owned(),
                digital_source_type: action
                    .get("digitalSourceType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                software_agent,
            });
        }
    }
    out
}

/// Whether `term` (an IRI such as `http://cv.iptc.org/newscodes/digitalsourcetype/X`, or the
/// bare `X`) names one of [`AI_SOURCE_TYPES`] from the IPTC vocabulary.
pub(crate) fn is_ai_source_type(term: &str) -> bool {
    let term = term.trim();
    let name = match term.rsplit_once('/') {
        Some((namespace, name)) => {
            let namespace = namespace
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            if namespace != "cv.iptc.org/newscodes/digitalsourcetype" {
                return false;
            }
            name
        }
        None => term,
    };
    AI_SOURCE_TYPES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ai_source_types_are_recognised_as_iris_and_bare_terms() {
        for term in [
            "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
            "https://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic",
            "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
            "algorithmicMedia",
        ] {
            assert!(is_ai_source_type(term), "{term}");
        }
        for term in [
            "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
            "http://cv.iptc.org/newscodes/digitalsourcetype/composite",
            "http://example.com/trainedAlgorithmicMedia",
            "http://c2pa.org/digitalsourcetype/trainedAlgorithmicData",
            "",
        ] {
            assert!(!is_ai_source_type(term), "{term}");
        }
    }

    #[test]
    fn a_file_without_the_c2pa_label_has_no_manifest_and_costs_one_scan() {
        let mut warnings = Vec::new();
        let credentials = read_credentials(
            b"\xff\xd8 no credentials",
            "image/jpeg",
            None,
            &mut warnings,
        );
        assert_eq!(credentials, ContentCredentials::default());
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_declared_ai_source_type_flags_a_file_without_a_manifest() {
        let mut warnings = Vec::new();
        let credentials = read_credentials(
            b"",
            "image/png",
            Some("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"),
            &mut warnings,
        );
        assert!(!credentials.present);
        assert!(credentials.ai_generated);
        assert_eq!(credentials.valid, None);
    }
}
