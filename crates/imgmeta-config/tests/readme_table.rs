//! The README's configuration table lists exactly the variables this crate reads: every
//! `"IMGMETA_…"` name in the crate's source is in the table, and every name in the table is
//! read, so the table cannot drift from the code.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `IMGMETA_*` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("IMGMETA_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > "IMGMETA_".len() {
            names.insert(name.trim_end_matches('_').to_owned());
        }
        rest = &rest[at + "IMGMETA_".len()..];
    }
    names
}

#[test]
fn the_readme_configuration_table_lists_every_variable_the_config_crate_reads() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut read = BTreeSet::new();
    for entry in std::fs::read_dir(crate_dir.join("src")).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // Only quoted names: the variables the code looks up.
        for quoted in source.split('"').skip(1).step_by(2) {
            if quoted.starts_with("IMGMETA_") && names_in(quoted).len() == 1 {
                read.insert(quoted.to_owned());
            }
        }
    }
    let readme = std::fs::read_to_string(crate_dir.join("../../README.md")).unwrap();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section")
        .split("\n## ")
        .next()
        .unwrap();
    let listed: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| names_in(l.split(" | ").next().unwrap_or("")))
        .collect();

    let missing: Vec<_> = read.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&read).collect();
    assert!(
        missing.is_empty(),
        "read but not in the README table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "in the README table but never read: {stale:?}"
    );
    assert!(read.len() > 30, "the scan found only {read:?}");
}
