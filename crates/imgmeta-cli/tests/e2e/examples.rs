//! The README's example documents come from the real service: this test submits the
//! walk-through's image to a running API and worker, and checks that `docs/examples/*.json`
//! holds what the service answers (the same fields, types and strings; detector numbers within
//! a float tolerance, since CPUs differ in the last bits; ids, times, ports and timings are of
//! the run) and that each README block marked `<!-- example: FILE -->` is that file verbatim.
//!
//! `IMGMETA_WRITE_EXAMPLES=1 cargo test -p imgmeta-cli --test e2e examples` rewrites the files
//! and the README's blocks from the run instead.

use crate::helpers::TestApp;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fields whose values belong to one run: compared by type only.
fn volatile(path: &str) -> bool {
    matches!(
        path,
        ".id" | ".url" | ".source.url" | ".created_at" | ".started_at" | ".finished_at"
    ) || path.starts_with(".result.timings_ms.")
}

/// Differences between `expected` and `actual`, by JSON path.
fn differences(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let here = format!("{path}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => differences(&here, e, a, out),
                    (Some(_), None) => out.push(format!("{here}: missing from the answer")),
                    (None, Some(_)) => out.push(format!("{here}: not in the example")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!(
                    "{path}: {} items, the answer has {}",
                    e.len(),
                    a.len()
                ));
                return;
            }
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                differences(&format!("{path}[{i}]"), e, a, out);
            }
        }
        _ if volatile(path) => {
            let same_type = std::mem::discriminant(expected) == std::mem::discriminant(actual);
            if !same_type {
                out.push(format!("{path}: {expected} vs {actual} (different types)"));
            }
        }
        (Value::Number(e), Value::Number(a)) if e.is_f64() || a.is_f64() => {
            // Detector output: the last bits differ between CPUs.
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            if (e - a).abs() > 1e-3 * e.abs().max(1.0) {
                out.push(format!("{path}: {e} vs {a}"));
            }
        }
        // An id inside a message belongs to the run too.
        (Value::String(e), Value::String(a)) if mask_uuids(e) != mask_uuids(a) => {
            out.push(format!("{path}: {e:?} vs {a:?}"));
        }
        (Value::String(_), Value::String(_)) => {}
        _ if expected != actual => out.push(format!("{path}: {expected} vs {actual}")),
        _ => {}
    }
}

fn mask_uuids(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if uuid::Uuid::parse_str(word).is_ok() {
                "<uuid>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value on one line, with a space after each `:` and `,`.
fn flat(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), flat(v)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(flat).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// JSON laid out for reading in few lines: a value whose one-line form fits in `WIDTH`
/// columns stays on one line; a larger object or array packs its members onto lines of at
/// most `WIDTH` columns, and a member too large for that gets lines of its own.
fn layout(value: &Value, indent: usize, out: &mut String) {
    const WIDTH: usize = 100;
    let one_line = flat(value);
    if indent + one_line.len() <= WIDTH {
        out.push_str(&one_line);
        return;
    }
    let (open, close, members): (char, char, Vec<(Option<&String>, &Value)>) = match value {
        Value::Object(map) => ('{', '}', map.iter().map(|(k, v)| (Some(k), v)).collect()),
        Value::Array(items) => ('[', ']', items.iter().map(|v| (None, v)).collect()),
        _ => {
            out.push_str(&one_line);
            return;
        }
    };
    let pad = " ".repeat(indent + 2);
    out.push(open);
    out.push('\n');
    let mut line = String::new();
    let count = members.len();
    for (i, (key, v)) in members.into_iter().enumerate() {
        let prefix = key
            .map(|k| format!("{}: ", serde_json::to_string(k).unwrap()))
            .unwrap_or_default();
        let comma = if i + 1 < count { "," } else { "" };
        let text = format!("{prefix}{}{comma}", flat(v));
        if pad.len() + text.len() <= WIDTH {
            if !line.is_empty() && pad.len() + line.len() + 1 + text.len() > WIDTH {
                out.push_str(&format!("{pad}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&text);
        } else {
            if !line.is_empty() {
                out.push_str(&format!("{pad}{line}\n"));
                line.clear();
            }
            out.push_str(&pad);
            out.push_str(&prefix);
            layout(v, indent + 2, out);
            out.push_str(comma);
            out.push('\n');
        }
    }
    if !line.is_empty() {
        out.push_str(&format!("{pad}{line}\n"));
    }
    out.push_str(&" ".repeat(indent));
    out.push(close);
}

fn laid_out(value: &Value) -> String {
    let mut out = String::new();
    layout(value, 0, &mut out);
    out.push('\n');
    out
}

/// The README's blocks: (file named by the marker, the fenced JSON after it).
fn readme_blocks(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(at) = rest.find("<!-- example: ") {
        rest = &rest[at + "<!-- example: ".len()..];
        let end = rest.find(" -->").expect("a closed example marker");
        let file = rest[..end].to_owned();
        let after = &rest[end..];
        let open = after
            .find("```json\n")
            .expect("a json block after the marker")
            + 8;
        let close = after[open..].find("```").expect("a closed json block");
        blocks.push((file, after[open..open + close].to_owned()));
    }
    blocks
}

/// Compares one example with the service's answer, or writes it.
fn check_or_write(name: &str, answer: &Value, problems: &mut Vec<String>) {
    let path = repo().join("docs/examples").join(name);
    if std::env::var_os("IMGMETA_WRITE_EXAMPLES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, laid_out(answer)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; IMGMETA_WRITE_EXAMPLES=1 makes it", path.display()));
    let example: Value = serde_json::from_str(&text).expect("the example is JSON");
    let mut found = Vec::new();
    differences("", &example, answer, &mut found);
    problems.extend(found.into_iter().map(|d| format!("{name}: {d}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_are_what_the_service_answers() {
    let app = TestApp::spawn().await;
    let id = app
        .submit_ok(json!({
            "url": app.photo_url("chelsea.png"),
            "tasks": ["metadata", "objects"],
            "min_score": 0.25,
        }))
        .await;
    let finished = app.wait_terminal(&id).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    // What a client polling the job reads.
    let job: Value = app.get_job(&id).await.json().await.unwrap();
    assert_eq!(
        job["result"]["objects"]["model"]["iou_threshold"].to_string(),
        "0.45",
        "f32 settings print as their shortest decimal"
    );
    let missing = app.get_job(&uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(missing.status(), 404);
    let not_found: Value = missing.json().await.unwrap();

    let mut problems = Vec::new();
    // As the walk-through serves it (the URL is the run's, and compared by type only).
    let mut job = job;
    job["url"] = json!("http://127.0.0.1:9000/chelsea.png");
    job["source"]["url"] = job["url"].clone();
    check_or_write("job-succeeded.json", &job, &mut problems);
    check_or_write("error-not-found.json", &not_found, &mut problems);

    let readme_path = repo().join("README.md");
    let mut readme = std::fs::read_to_string(&readme_path).unwrap();
    let blocks = readme_blocks(&readme);
    assert!(blocks.len() >= 2, "the README marks its examples");
    for (file, block) in blocks {
        let text = std::fs::read_to_string(repo().join(&file))
            .unwrap_or_else(|e| panic!("README names {file}: {e}"));
        if block != text {
            if std::env::var_os("IMGMETA_WRITE_EXAMPLES").is_some() {
                readme = readme.replacen(&block, &text, 1);
            } else {
                problems.push(format!("README's block for {file} differs from the file"));
            }
        }
    }
    if std::env::var_os("IMGMETA_WRITE_EXAMPLES").is_some() {
        std::fs::write(&readme_path, readme).unwrap();
    }
    assert!(
        problems.is_empty(),
        "the examples drifted from the service (IMGMETA_WRITE_EXAMPLES=1 rewrites them):\n{}",
        problems.join("\n")
    );
    app.cleanup().await;
}
