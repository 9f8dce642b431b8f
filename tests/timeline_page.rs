//! `sluice sim --timeline`: the page of a failing seed renders in headless Chromium (Debian's `chromium`,
//! which `.ci/run` installs; `CHROMIUM` names another binary) and shows every lane and every anomaly of
//! the run, without the network. A screenshot is kept for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// Chromium, or a failure that says how to get it: the test must not pass without it.
fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium (apt-get install chromium), as .ci/run does, or set CHROMIUM",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args`; what it printed.
fn headless(page: &Path, profile: &Path, args: &[&str]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Text as Chromium serializes it in the DOM.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn a_failing_seeds_timeline_renders_every_lane_and_anomaly_in_chromium() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = dir.path().join("timeline.html");
    let output = Command::new(SLUICE)
        .args(["sim", "--scenario", "crash-restart-storm", "--seed", "3"])
        .args(["--sink-bug", "commit-before-flush", "--timeline"])
        .arg(&page)
        .output()
        .expect("run sluice sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the planted bug should be found: {stdout}"
    );
    assert!(
        stdout.contains(&format!("timeline: {}", page.display())),
        "{stdout}"
    );

    // What the page must show: the run's data, as the page carries it.
    let source = std::fs::read_to_string(&page).expect("the page is written");
    assert!(
        !source.contains("http://") && !source.contains("https://"),
        "the page must not need the network"
    );
    let data = source
        .split(r#"<script id="timeline-data" type="application/json">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the page carries its data");
    let data: serde_json::Value = serde_json::from_str(data).expect("the data is JSON");
    let lanes: Vec<(&str, &str)> = data["lanes"]
        .as_array()
        .expect("lanes")
        .iter()
        .map(|lane| {
            (
                lane["name"].as_str().unwrap_or(""),
                lane["kind"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for kind in ["broker", "worker", "kafka", "group", "member", "oracle"] {
        assert!(
            lanes.iter().any(|(_, k)| *k == kind),
            "no {kind} lane in {lanes:?}"
        );
    }
    for host in [
        "broker-0", "broker-1", "broker-2", "worker-0", "worker-1", "worker-2",
    ] {
        assert!(
            lanes.iter().any(|(name, _)| *name == host),
            "no lane for {host}"
        );
    }
    let anomalies = data["anomalies"].as_array().expect("anomalies");
    assert!(!anomalies.is_empty());
    let faults: usize = data["lanes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|lane| lane["marks"].as_array().into_iter().flatten())
        .filter(|mark| mark["kind"] == "fault")
        .count();
    assert!(faults > 0, "the seed's faults are on the timeline");

    // What Chromium rendered: every lane, and every anomaly with its account and records.
    let profile = dir.path().join("profile");
    let dom = headless(&page, &profile, &["--dump-dom"]);
    assert!(
        dom.contains(&format!(r#"data-rendered="{}""#, lanes.len())),
        "the script did not finish drawing the page"
    );
    for (name, kind) in &lanes {
        assert!(
            dom.contains(&format!(
                r#"data-lane="{}" data-kind="{kind}""#,
                escaped(name)
            )),
            "lane {name} is not drawn"
        );
    }
    assert_eq!(
        dom.matches(r#"<li class="anomaly""#).count(),
        anomalies.len()
    );
    for anomaly in anomalies {
        let kind = anomaly["kind"].as_str().unwrap_or("");
        let detail = anomaly["detail"].as_str().unwrap_or("");
        assert!(dom.contains(&format!(r#"data-kind="{kind}""#)), "{kind}");
        assert!(dom.contains(&escaped(detail)), "{detail}");
        for record in anomaly["records"].as_array().into_iter().flatten() {
            let record = record.as_str().unwrap_or("");
            assert!(
                dom.contains(&format!(r#"data-record="{record}""#)),
                "{record}"
            );
        }
    }
    assert!(
        dom.contains("kind-fault")
            && dom.contains("kind-anomaly")
            && dom.contains("kind-generation")
    );

    // A screenshot a person can look at, kept beside the test's build.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("timeline");
    std::fs::create_dir_all(&shots).expect("a folder for the screenshot");
    let shot = shots.join("crash-restart-storm-seed-3.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &page,
        &profile,
        &[
            "--window-size=1600,1100",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A blank page compresses to a few kilobytes; lanes full of marks do not.
    assert!(
        png.len() > 30_000,
        "the screenshot looks empty: {} bytes",
        png.len()
    );
    println!("screenshot: {}", shot.display());
}
