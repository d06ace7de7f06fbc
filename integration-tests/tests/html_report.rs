//! `report.html` in a real browser: the report of a real burst run is opened
//! in headless Chromium (Debian's `chromium`, installed by test.sh), which
//! must draw its charts and make no network request.
//!
//! Requests are observed, not assumed: Chromium's net log records every
//! request it starts, and its console log every fetch the page's
//! Content-Security-Policy refused. Two control pages prove both detectors
//! see a fetch when there is one.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WINDOW: (u32, u32) = (1280, 2000);

/// The scenario's name is markup, to see it arrive as text.
const NAME: &str = "burst <b>recovery</b> & co";

#[test]
fn a_burst_report_draws_its_charts_in_chromium_and_fetches_nothing() {
    let _serial = serial();
    let browser = chromium();
    let dir = TempDir::new("html");
    let out = burst_run(&dir);
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).expect("the run wrote report.html");

    let seen = visit(&browser, &page, dir.path(), "report");

    // The page as the browser built it: five charts, the name as text.
    assert_eq!(seen.dom.matches("<svg class=\"chart\"").count(), 5);
    assert!(seen.dom.matches("<polyline").count() >= 10, "lines drawn");
    assert!(
        seen.dom
            .contains("Volley report: burst &lt;b&gt;recovery&lt;/b&gt; &amp; co</h1>"),
        "the scenario name must arrive as text, not markup"
    );

    // The screenshot: not blank, and the charts' own colours are on it.
    let px = Pixels::read(&seen.screenshot);
    assert_eq!((px.width, px.height), WINDOW);
    let ink = px.count(|[r, g, b]| r.min(g).min(b) < 235);
    assert!(
        ink > px.len() / 20,
        "the page looks blank: {ink} of {} pixels are not white",
        px.len()
    );
    for (what, colour) in [
        ("p50 and sent lines", [31, 119, 180]),
        ("p90 line", [140, 86, 200]),
        ("p99 line", [240, 120, 10]),
        ("ok rate line", [44, 160, 44]),
        ("burst shading", [252, 237, 204]),
    ] {
        let n = px.count(|c| near(c, colour, 24));
        assert!(n > 150, "{what} {colour:?}: only {n} pixels of it");
    }

    // No word of a table is broken over lines (a squeezed first column once
    // put "Latency" one letter per line at this window's width). A copy of
    // the page runs a measuring script; a control proves the detector sees
    // a broken word.
    assert_eq!(broken_words(&browser, &html, dir.path(), "layout"), "[]");
    let squeezed = "<!doctype html><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <table style=\"width:8px\"><tr><td class=\"l\" style=\"overflow-wrap:anywhere\">Latency</td></tr></table>";
    assert!(
        broken_words(&browser, squeezed, dir.path(), "squeezed").contains("Latency"),
        "the detector sees a word broken over lines"
    );

    // No request from the page, none refused by its policy; and the file
    // itself names nothing to fetch.
    assert_eq!(page_requests(&seen.netlog), Vec::<String>::new());
    assert!(
        !seen.log.contains("Content Security Policy"),
        "the page tried to fetch something:\n{}",
        seen.log
    );
    for banned in ["src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(banned), "report.html contains {banned:?}");
    }

    // Controls. A fetch the policy allows would show in the net log (and
    // reach the listener); the report's policy refuses one, and says so.
    let (probe, hits) = probe_server();
    let img = format!("<img src=\"{probe}/probe.png\">");
    let open = dir.write("open.html", &format!("<!doctype html><p>control</p>{img}"));
    let control = visit(&browser, &open, dir.path(), "open");
    let requests = page_requests(&control.netlog);
    assert_eq!(
        requests,
        vec![format!("{probe}/probe.png")],
        "net log detector"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the probe was fetched");

    let guarded = dir.write(
        "guarded.html",
        &html.replacen("<main>", &format!("<main>{img}"), 1),
    );
    let control = visit(&browser, &guarded, dir.path(), "guarded");
    assert!(
        control.log.contains("Content Security Policy"),
        "console detector: a refused fetch is logged\n{}",
        control.log
    );
    assert_eq!(page_requests(&control.netlog), Vec::<String>::new());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the policy stopped the fetch"
    );
}

/// The words of table cells that the browser broke over more than one line,
/// as a JSON list, measured in `html` (the page's policy is relaxed in the
/// copy only so that the measuring script may run).
fn broken_words(browser: &Path, html: &str, dir: &Path, tag: &str) -> String {
    const SCRIPT: &str = r#"<script>
addEventListener('load', () => {
  const broken = [];
  for (const cell of document.querySelectorAll('th, td')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.data.matchAll(/\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  document.body.setAttribute('data-broken', JSON.stringify(broken));
});
</script>"#;
    let relaxed = html
        .replacen(
            "default-src 'none'",
            "default-src 'none'; script-src 'unsafe-inline'",
            1,
        )
        .replacen("</body>", &format!("{SCRIPT}</body>"), 1);
    let relaxed = if relaxed.contains(SCRIPT) {
        relaxed
    } else {
        format!("{relaxed}{SCRIPT}")
    };
    let page = dir.join(format!("{tag}.html"));
    std::fs::write(&page, relaxed).unwrap();
    let seen = visit(browser, &page, dir, tag);
    let at = seen
        .dom
        .find("data-broken=\"")
        .unwrap_or_else(|| panic!("{tag}: the measuring script did not run:\n{}", seen.log));
    let rest = &seen.dom[at + "data-broken=\"".len()..];
    rest[..rest.find('"').unwrap()].replace("&quot;", "\"")
}

/// Runs a short burst against a target that serves at most 400 requests/s,
/// so latency climbs during the burst and recovers after it.
fn burst_run(dir: &TempDir) -> PathBuf {
    let (_target, url) = start_target(&["--capacity", "400", "--delay", "5ms"]);
    let (_coord, coord_url) = start_coordinator(&[]);
    let _w = start_worker(&coord_url, &[]);
    let file = dir.write(
        "burst.toml",
        &format!(
            r#"
name = "{}"
thresholds = ["p99 < 10s warn 200ms", "success_rate > 99%", "recovery_time < 30s"]
recovery_window = "2s"
recovery_tolerance = "50%"
[target]
url = "{url}"
timeout = "10s"
[[stages]]
name = "baseline"
rate = 100
duration = "3s"
[[stages]]
name = "burst"
rate = 800
duration = "2s"
burst = true
[[stages]]
name = "after"
rate = 100
duration = "8s"
"#,
            NAME.replace('"', "\\\"")
        ),
    );
    let out = dir.path().join("out");
    let mut cmd = volley();
    cmd.args(["run", file.to_str().unwrap(), "--coordinator", &coord_url])
        .args(["--quiet", "--out", out.to_str().unwrap()]);
    let (output, _) = run_bounded(cmd, Duration::from_secs(90));
    assert!(output.status.success(), "{}", describe(&output));
    let r = read_report(&out);
    assert_eq!(r["recovery"][0]["stage"], "burst", "a burst to draw");
    out
}

/// Debian's `chromium`, or `$VOLLEY_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("VOLLEY_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: this test opens report.html in a real browser. \
                 ./test.sh installs it (apt-get install chromium), or set VOLLEY_CHROMIUM"
            )
        })
}

/// What the browser made of a page.
struct Visit {
    /// The DOM after loading, serialized.
    dom: String,
    screenshot: PathBuf,
    /// Chromium's net log (JSON).
    netlog: String,
    /// Chromium's own log, console messages included.
    log: String,
}

fn visit(browser: &Path, page: &Path, dir: &Path, tag: &str) -> Visit {
    let profile = dir.join(format!("{tag}-profile"));
    std::fs::create_dir_all(&profile).unwrap();
    let screenshot = dir.join(format!("{tag}.png"));
    let netlog = dir.join(format!("{tag}.netlog.json"));
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Chromium's own background requests stay on this machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
    .arg(format!("--screenshot={}", screenshot.display()))
    .arg(format!("--log-net-log={}", netlog.display()))
    .arg(format!("file://{}", page.display()));
    let (out, _) = run_bounded(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "chromium failed:\n{}", describe(&out));
    Visit {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        screenshot,
        netlog: std::fs::read_to_string(&netlog).expect("chromium wrote its net log"),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The URLs of the requests a page made, from a net log. A request made for
/// a page carries the page's origin ("null" for a file) and its network
/// isolation key; Chromium's own background requests have neither.
fn page_requests(netlog: &str) -> Vec<String> {
    let log: Value = serde_json::from_str(netlog)
        // A log cut short at exit lacks its closing brackets.
        .or_else(|_| {
            serde_json::from_str(&format!("{}]}}", netlog.trim_end().trim_end_matches(',')))
        })
        .expect("the net log is JSON");
    let start = &log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"];
    assert!(
        start.is_u64(),
        "net log constants name URL_REQUEST_START_JOB"
    );
    let events = log["events"].as_array().expect("net log events");
    events
        .iter()
        // Begin events: the end of a job repeats none of its parameters.
        .filter(|e| &e["type"] == start && e["params"]["url"].is_string())
        .filter(|e| {
            let p = &e["params"];
            p["initiator"] != "not an origin"
                || p["network_isolation_key"]
                    .as_str()
                    .is_some_and(|k| k.contains("file:"))
        })
        .map(|e| e["params"]["url"].as_str().unwrap().to_string())
        .collect()
}

/// A loopback HTTP server that answers 404 and counts the requests it got.
fn probe_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, hits)
}

/// A screenshot's pixels as RGB.
struct Pixels {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Pixels {
    fn read(path: &Path) -> Pixels {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        let channels = info.color_type.samples();
        assert!(
            channels >= 3,
            "a colour screenshot, got {:?}",
            info.color_type
        );
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Pixels {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn len(&self) -> usize {
        self.rgb.len()
    }

    fn count(&self, f: impl Fn([u8; 3]) -> bool) -> usize {
        self.rgb.iter().filter(|p| f(**p)).count()
    }
}

fn near(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}
