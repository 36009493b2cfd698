//! ARCHITECTURE.md's cheap invariants, checked against the workspace's real dependency graph
//! (`cargo metadata`): only `imgmeta-store` knows SQL (`sqlx`), only `imgmeta-queue` knows AMQP
//! (`lapin`), only `imgmeta-vision` knows candle, only `imgmeta-api` knows HTTP serving
//! (`axum`, `hyper`). Development dependencies (tests) and the black-box fault-injection
//! harness, which plays clients, brokers and image servers, are outside the rule. And only
//! `imgmeta-config` reads the environment: no other crate's `src/` calls `std::env::var*` or
//! lets a library read it (tracing's `from_default_env`); and only `imgmeta-metadata` decodes
//! images (with its limits): no other crate's `src/` opens an `image` decoder.

use serde_json::Value;
use std::collections::BTreeMap;

/// Which workspace crates may depend, for their own code, on each guarded dependency.
const OWNERS: &[(&str, &[&str])] = &[
    ("sqlx", &["imgmeta-store"]),
    ("lapin", &["imgmeta-queue"]),
    ("deadpool", &["imgmeta-queue"]),
    ("candle-core", &["imgmeta-vision"]),
    ("candle-nn", &["imgmeta-vision"]),
    ("axum", &["imgmeta-api"]),
    ("hyper", &["imgmeta-api"]),
];
const HARNESS: &str = "imgmeta-chaos";

#[test]
fn only_the_owning_crate_depends_on_each_guarded_library() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "{output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let packages = metadata["packages"].as_array().unwrap();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        if name == HARNESS {
            continue;
        }
        for dependency in package["dependencies"].as_array().unwrap() {
            // `kind` is null for normal dependencies, "dev" or "build" otherwise.
            if !dependency["kind"].is_null() {
                continue;
            }
            let dep = dependency["name"].as_str().unwrap();
            if let Some((guarded, _)) = OWNERS.iter().find(|(g, _)| *g == dep) {
                users.entry(guarded).or_default().push(name.to_owned());
            }
        }
    }
    let mut broken = Vec::new();
    for (guarded, owners) in OWNERS {
        for user in users.get(guarded).into_iter().flatten() {
            if !owners.contains(&user.as_str()) {
                broken.push(format!("{user} depends on {guarded}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "architecture invariants broken: {broken:?}"
    );
    assert!(
        packages.len() >= 15,
        "cargo metadata listed too few packages"
    );
    assert!(users.contains_key("sqlx") && users.contains_key("axum"));
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `file: needle` for each of `needles` found in the `src/` of a crate other than `owner`
/// (and the fault-injection harness), looking only at the part of each file `code_of` keeps.
fn uses_outside(owner: &str, needles: &[&str], code_of: fn(&str) -> &str) -> Vec<String> {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let krate = entry.unwrap().path();
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        if name == owner || name == HARNESS {
            continue;
        }
        if krate.join("src").is_dir() {
            rust_files(&krate.join("src"), &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = code_of(&text);
        for needle in needles {
            if code.contains(needle) {
                found.push(format!("{} uses {needle}", file.display()));
            }
        }
    }
    found
}

#[test]
fn only_the_config_crate_reads_the_environment() {
    // The settings' own entry point, Settings::from_env, is how the others read it.
    let broken = uses_outside(
        "imgmeta-config",
        &[
            "env::var(",
            "env::var_os(",
            "env::vars(",
            "env::vars_os(",
            "from_default_env",
            "from_env_lossy",
        ],
        |text| text,
    );
    assert!(
        broken.is_empty(),
        "environment read outside imgmeta-config: {broken:?}"
    );
}

#[test]
fn only_the_metadata_crate_decodes_images() {
    // Tests inside a file may build images; only the code above them counts.
    let broken = uses_outside(
        "imgmeta-metadata",
        &[
            "ImageReader",
            "load_from_memory",
            "image::open(",
            "from_decoder(",
            "image::load(",
        ],
        |text| text.split("#[cfg(test)]").next().unwrap_or(""),
    );
    assert!(
        broken.is_empty(),
        "images decoded outside imgmeta-metadata: {broken:?}"
    );
}
