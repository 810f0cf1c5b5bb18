//! `streamctl abr-sim` end to end: output contract and error handling.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn streamctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamctl"))
        .args(args)
        .env_remove("ABR_DATA_DIR")
        .output()
        .expect("spawn streamctl")
}

/// A data dir with two small traces and 49-chunk size files.
fn data_dir(root: &Path) -> std::path::PathBuf {
    let traces = root.join("traces");
    fs::create_dir_all(&traces).unwrap();
    fs::write(
        traces.join("b_trace"),
        "0.0 2.0\n1.0 3.0\n2.0 1.0\n3.0 4.0\n",
    )
    .unwrap();
    fs::write(traces.join("a_trace"), "0.0 1.5\n0.5 1.5\n1.0 0.5\n").unwrap();
    for (r, kbps) in [300u64, 750, 1200, 1850, 2850, 4300].iter().enumerate() {
        let line = format!("{}\n", kbps * 1000 * 4 / 8);
        fs::write(root.join(format!("video_size_{r}")), line.repeat(49)).unwrap();
    }
    traces
}

#[test]
fn last_line_is_the_json_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = data_dir(tmp.path());
    let out = streamctl(&[
        "abr-sim",
        "--algo",
        "all",
        "--traces",
        traces.to_str().unwrap(),
        "--report-loss",
        "0.2",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("mean QoE"), "human table printed: {stdout}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(v["traces"], 2);
    let results = v["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["algo"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rb",
            "bba",
            "bola",
            "robust-mpc",
            "robust-mpc-fixed",
            "production"
        ]
    );
    assert_eq!(
        results.iter().filter(|r| r["production"] == true).count(),
        1
    );
    for r in results {
        for key in ["mean_qoe", "mean_bitrate_kbps", "rebuffer_s", "switches"] {
            assert!(r[key].as_f64().is_some_and(f64::is_finite), "{key} in {r}");
        }
    }
}

#[test]
fn synthetic_and_scenarios_run() {
    let tmp = tempfile::tempdir().unwrap();
    data_dir(tmp.path());
    let sizes = tmp.path().to_str().unwrap();
    for extra in [&["--synthetic", "3"][..], &["--scenarios"][..]] {
        let mut args = vec!["abr-sim", "--algo", "rb,production", "--video-sizes", sizes];
        args.extend_from_slice(extra);
        let out = streamctl(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 2);
    }
}

fn assert_fails(args: &[&str], needle: &str) {
    let out = streamctl(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
}

#[test]
fn bad_input_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let traces = data_dir(tmp.path());
    let t = traces.to_str().unwrap();
    assert_fails(
        &["abr-sim", "--traces", "/nonexistent/abr/traces"],
        "does not exist",
    );
    assert_fails(
        &["abr-sim", "--traces", t, "--algo", "pensieve"],
        "unknown ABR algorithm",
    );
    assert_fails(
        &["abr-sim", "--traces", t, "--report-loss", "2"],
        "report loss",
    );

    let empty_dir = tmp.path().join("empty");
    fs::create_dir_all(&empty_dir).unwrap();
    assert_fails(
        &[
            "abr-sim",
            "--traces",
            empty_dir.to_str().unwrap(),
            "--video-sizes",
            tmp.path().to_str().unwrap(),
        ],
        "no trace files",
    );

    fs::write(traces.join("c_empty"), "").unwrap();
    assert_fails(&["abr-sim", "--traces", t], "c_empty");
    fs::remove_file(traces.join("c_empty")).unwrap();

    fs::write(traces.join("d_zero"), "0 0\n1 0\n2 0\n").unwrap();
    assert_fails(&["abr-sim", "--traces", t], "total throughput is zero");
}
