//! Hostile images through the real `imgmeta analyze`: an EXIF text bomb and an ICC bomb give a
//! small result, and the process's peak memory stays bounded.
//!
//! The peak comes from the kernel's rusage of the `imgmeta` process, read by a small Python
//! probe that spawns it and reports its children's `ru_maxrss`. Not from this test binary's own
//! `wait4`: a child spawned here (posix_spawn, a vfork) inherits, at its exec, the *parent's*
//! high-water mark as its own `ru_maxrss`, so it would report this test binary's peak (hundreds
//! of MiB while other e2e tests upload batches) instead of its own. The probe is exec'd fresh
//! and holds about 10 MiB, a floor well under the limit.

#[path = "../../../imgmeta-metadata/tests/support/bombs.rs"]
mod builders;

use serde_json::Value;

/// Most memory `imgmeta analyze` may reach on a hostile image, detector included.
const MAX_PEAK_MIB: f64 = 300.0;
/// The largest result the service stores.
const MAX_RESULT_BYTES: usize = 256 * 1024;

/// Runs `argv[1:]` with stdout inherited and stderr dropped, then prints the child's peak RSS in
/// KiB (Linux `ru_maxrss`) on stderr; exits 3 when the child did not exit normally.
const PEAK_PROBE: &str = r#"
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(0 if code >= 0 else 3)
"#;

/// Runs `imgmeta analyze` on `bytes` and returns its stdout and peak RSS in MiB.
fn analyze(bytes: &[u8], name: &str) -> (String, f64) {
    let dir = std::env::temp_dir().join(format!("imgmeta-bombs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(PEAK_PROBE)
        .arg(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("analyze")
        .arg(&path)
        .env("IMGMETA_MODEL_DIR", crate::helpers::model_dir())
        .env("RUST_LOG", "warn")
        .output()
        .expect("python3 runs the peak-memory probe");
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "analyze crashed on {name}: {stderr}"
    );
    let peak_kib: f64 = stderr
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("probe output {stderr:?}"));
    let peak = peak_kib / 1024.0;
    let out = String::from_utf8(output.stdout).unwrap();
    eprintln!(
        "imgmeta analyze {name}: result {} bytes, peak RSS {peak:.0} MiB",
        out.len()
    );
    (out, peak)
}

#[test]
fn an_exif_text_bomb_gives_a_small_result_in_bounded_memory() {
    let (out, peak) = analyze(&builders::exif_text_bomb(5_000_000), "exif-bomb.png");
    assert!(
        out.len() <= MAX_RESULT_BYTES,
        "result of {} bytes",
        out.len()
    );
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result["image"]["exif"]["truncated"],
        serde_json::json!(["make", "model", "lens"]),
        "{result}"
    );
    assert!(peak <= MAX_PEAK_MIB, "peak RSS {peak:.0} MiB");
}

#[test]
fn an_icc_bomb_is_not_inflated_and_memory_stays_bounded() {
    let (out, peak) = analyze(&builders::iccp_bomb(400 << 20), "icc-bomb.png");
    assert!(
        out.len() <= MAX_RESULT_BYTES,
        "result of {} bytes",
        out.len()
    );
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        result["image"]["icc"]["truncated"],
        serde_json::json!(["profile"]),
        "{result}"
    );
    assert!(peak <= MAX_PEAK_MIB, "peak RSS {peak:.0} MiB");
}
