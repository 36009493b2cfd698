//! Hostile images through the real `imgmeta analyze`: an EXIF text bomb and an ICC bomb give a
//! small result, and the process's peak memory (from the kernel's rusage of the child) stays
//! bounded.

#[path = "../../../imgmeta-metadata/tests/support/bombs.rs"]
mod builders;

use serde_json::Value;

/// Most memory `imgmeta analyze` may reach on a hostile image, detector included.
const MAX_PEAK_MIB: f64 = 300.0;
/// The largest result the service stores.
const MAX_RESULT_BYTES: usize = 256 * 1024;

/// Runs `imgmeta analyze` on `bytes` and returns its stdout and peak RSS in MiB.
// std has no way to get a child's rusage; libc's wait4 is the one unsafe call here.
#[allow(unsafe_code)]
fn analyze(bytes: &[u8], name: &str) -> (String, f64) {
    let dir = std::env::temp_dir().join(format!("imgmeta-bombs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    // Reaped below with wait4 (which std's wait cannot replace: it drops the rusage).
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_imgmeta"))
        .arg("analyze")
        .arg(&path)
        .env("IMGMETA_MODEL_DIR", crate::helpers::model_dir())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        out
    });
    // wait4 reaps this very child and reports its own peak, whatever else the test binary runs.
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let out = reader.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(libc::WIFEXITED(status), "analyze crashed on {name}");
    // ru_maxrss is in KiB on Linux.
    let peak = usage.ru_maxrss as f64 / 1024.0;
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
