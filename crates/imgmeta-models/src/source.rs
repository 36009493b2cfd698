//! Obtains a model's published `.crate` archive and pulls its ONNX file out.
//!
//! Order of preference: the local cargo registry cache (free, works offline), then the
//! crates.io download endpoint. The archive is always checked against the sha256 in the
//! manifest, so where it came from does not matter.

use crate::{CrateSource, ModelError, sha256_hex};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CRATES_IO_DOWNLOAD: &str = "https://static.crates.io/crates";
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Far above the 9.3 MB archive, so a hostile mirror cannot fill the disk or memory.
const MAX_CRATE_BYTES: u64 = 64 * 1024 * 1024;
const MAX_ONNX_BYTES: u64 = 256 * 1024 * 1024;

/// The verified `.crate` bytes for `source`.
pub fn crate_archive(
    name: &str,
    source: &CrateSource,
    cargo_home: Option<&Path>,
) -> Result<Vec<u8>, ModelError> {
    let file_name = format!("{}-{}.crate", source.crate_name, source.version);
    for candidate in cargo_cache_candidates(cargo_home, &file_name) {
        if let Ok(bytes) = std::fs::read(&candidate)
            && sha256_hex(&bytes) == source.crate_sha256
        {
            eprintln!(
                "imgmeta: using {} from the cargo cache",
                candidate.display()
            );
            return Ok(bytes);
        }
    }
    let url = format!("{CRATES_IO_DOWNLOAD}/{}/{file_name}", source.crate_name);
    eprintln!("imgmeta: downloading {url} ...");
    let bytes = download(&url)?;
    verify(
        name,
        &format!("downloaded {file_name}"),
        &bytes,
        &source.crate_sha256,
    )?;
    eprintln!("imgmeta: downloaded {} bytes", bytes.len());
    Ok(bytes)
}

/// The ONNX file inside the crate's zip, verified at each step.
pub fn onnx_from_crate(
    name: &str,
    crate_bytes: &[u8],
    source: &CrateSource,
) -> Result<Vec<u8>, ModelError> {
    let zip_bytes = tar_entry(crate_bytes, &source.archive_entry)?;
    verify(
        name,
        &source.archive_entry,
        &zip_bytes,
        &source.archive_sha256,
    )?;
    let malformed = |reason: String| ModelError::Archive {
        what: source.archive_entry.clone(),
        reason,
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| malformed(e.to_string()))?;
    let entry = zip
        .by_name(&source.onnx_entry)
        .map_err(|e| malformed(format!("{}: {e}", source.onnx_entry)))?;
    let mut onnx = Vec::new();
    entry
        .take(MAX_ONNX_BYTES)
        .read_to_end(&mut onnx)
        .map_err(|e| malformed(e.to_string()))?;
    verify(name, &source.onnx_entry, &onnx, &source.onnx_sha256)?;
    Ok(onnx)
}

pub(crate) fn verify(
    name: &str,
    what: &str,
    bytes: &[u8],
    expected: &str,
) -> Result<(), ModelError> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(ModelError::ChecksumMismatch {
            name: name.to_owned(),
            what: what.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

fn tar_entry(crate_bytes: &[u8], wanted: &str) -> Result<Vec<u8>, ModelError> {
    let malformed = |reason: String| ModelError::Archive {
        what: "crate".into(),
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(crate_bytes));
    for entry in archive.entries().map_err(|e| malformed(e.to_string()))? {
        let mut entry = entry.map_err(|e| malformed(e.to_string()))?;
        let path = entry.path().map_err(|e| malformed(e.to_string()))?;
        if path == Path::new(wanted) {
            let mut out = Vec::new();
            entry
                .read_to_end(&mut out)
                .map_err(|e| malformed(e.to_string()))?;
            return Ok(out);
        }
    }
    Err(malformed(format!("it has no entry {wanted}")))
}

/// `$CARGO_HOME/registry/cache/*/<file>`; cargo names the middle directory after the
/// registry's URL hash, which we do not want to hard-code.
fn cargo_cache_candidates(cargo_home: Option<&Path>, file_name: &str) -> Vec<PathBuf> {
    let Some(cache) = cargo_home.map(|h| h.join("registry").join("cache")) else {
        return Vec::new();
    };
    let Ok(dirs) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    dirs.flatten()
        .map(|d| d.path().join(file_name))
        .filter(|p| p.is_file())
        .collect()
}

/// Downloads on a thread of its own with a private runtime, so this blocking call is safe
/// whether or not the caller is itself inside a tokio runtime.
fn download(url: &str) -> Result<Vec<u8>, ModelError> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let failed = |reason: String| ModelError::Download {
            url: url.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(DOWNLOAD_TIMEOUT)
                .user_agent(concat!("imgmeta-models/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| failed(e.to_string()))?;
            let mut response = client
                .get(&url)
                .send()
                .await
                .map_err(|e| failed(e.to_string()))?;
            if !response.status().is_success() {
                return Err(failed(format!("HTTP {}", response.status())));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > MAX_CRATE_BYTES {
                    return Err(failed(format!("larger than {MAX_CRATE_BYTES} bytes")));
                }
            }
            Ok(body)
        })
    })
    .join()
    .map_err(|_| ModelError::Download {
        url: "crates.io".into(),
        reason: "the download thread panicked".into(),
    })?
}
