//! ARCHITECTURE.md's cheap invariants, checked against the workspace's real dependency graph
//! (`cargo metadata`): only `imgmeta-store` knows SQL (`sqlx`), only `imgmeta-queue` knows AMQP
//! (`lapin`), only `imgmeta-vision` knows candle, only `imgmeta-api` knows HTTP serving
//! (`axum`, `hyper`). Development dependencies (tests) and the black-box fault-injection
//! harness, which plays clients, brokers and image servers, are outside the rule.

use serde_json::Value;
use std::collections::BTreeMap;

/// Which workspace crates may depend, for their own code, on each guarded dependency.
const OWNERS: &[(&str, &[&str])] = &[
    ("sqlx", &["imgmeta-store"]),
    ("lapin", &["imgmeta-queue"]),
    ("deadpool-lapin", &["imgmeta-queue"]),
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
