//! The evidence report in a real browser: headless Chromium (Debian package `chromium`)
//! loads report.html from disk, and the test checks what it rendered: the DOM it built
//! (verdict text, coloured token spans, the SVG curve, no script) and the pixels of a
//! screenshot (the green and red token backgrounds are painted).
//!
//! Skipped with a note when Chromium is missing, unless TRACEMARK_REQUIRE_BROWSER=1
//! (`make test-browser` installs it and sets that).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn browser() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("TRACEMARK_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "chromium not found (required: TRACEMARK_REQUIRE_BROWSER=1); `make test-browser` installs it");
        eprintln!("note: skipped, chromium not found (`make test-browser` installs it)");
    }
    found
}

fn tracemark(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tracemark"))
        .args(args)
        .current_dir(dir)
        .env("TRACEMARK_ALLOW_SHARED_KEY", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Chromium with a throwaway profile, no sandbox (CI runs as root), no GPU.
fn chromium(browser: &Path, dir: &Path, extra: &[String], page: &Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// RGB pixels of a PNG screenshot.
fn pixels(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn chromium_renders_the_detect_and_audit_reports() {
    let Some(browser) = browser() else { return };
    let dir = std::env::temp_dir().join(format!("tm-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    tracemark(&dir, &["keygen", "--out", "k", "--vocab-size", "1000"]);
    let wm = tracemark(
        &dir,
        &[
            "generate",
            "--profile",
            "k/profile.toml",
            "--synthetic",
            "--count",
            "2",
            "--seed",
            "5",
            "--json",
        ],
    );
    std::fs::write(dir.join("wm.jsonl"), wm).unwrap();
    tracemark(
        &dir,
        &[
            "detect",
            "--profile",
            "k/profile.toml",
            "--windowed",
            "--report",
            "d",
            "wm.jsonl",
        ],
    );
    tracemark(
        &dir,
        &[
            "audit",
            "--profile",
            "k/profile.toml",
            "--suspect",
            "wm.jsonl",
            "--report",
            "a",
        ],
    );

    let dom = chromium(
        &browser,
        &dir,
        &["--dump-dom".into()],
        &dir.join("d/report.html"),
    );
    assert!(
        dom.contains("2 of 2 documents judged watermarked"),
        "verdict in the DOM"
    );
    let green = dom.matches("class=\"tok g\"").count();
    let red = dom.matches("class=\"tok r\"").count();
    assert!(
        green > 100 && red > 10,
        "token spans: {green} green, {red} red"
    );
    assert!(
        dom.contains("class=\"window\""),
        "the best passage is marked"
    );
    assert!(
        !dom.to_lowercase().contains("<script"),
        "no script in the page"
    );

    let shot = dir.join("d.png");
    chromium(
        &browser,
        &dir,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,1400".into(),
        ],
        &dir.join("d/report.html"),
    );
    let painted = pixels(&shot);
    let count = |rgb: [u8; 3]| painted.iter().filter(|&&p| p == rgb).count();
    // The stylesheet's token backgrounds: #b7e4b7 green, #f5c2c2 red.
    assert!(
        count([0xb7, 0xe4, 0xb7]) > 1000,
        "green token backgrounds are painted"
    );
    assert!(
        count([0xf5, 0xc2, 0xc2]) > 200,
        "red token backgrounds are painted"
    );

    let dom = chromium(
        &browser,
        &dir,
        &["--dump-dom".into()],
        &dir.join("a/report.html"),
    );
    assert!(
        dom.contains("The suspect model carries the watermark"),
        "audit verdict"
    );
    assert!(
        dom.contains("<svg") && dom.contains("<polyline"),
        "the SVG curve"
    );
    assert!(
        dom.contains("threshold: 1 in 10^6"),
        "the threshold line's label"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
