//! The run's verdicts as JUnit XML (`--junit FILE` on `volley run`,
//! `attach` and `report`), for the test views of CI servers (Jenkins,
//! GitLab, GitHub Actions reporters).
//!
//! The document is `<testsuites>` with two suites, `thresholds` (one test
//! case per threshold verdict) and `regressions` (one per row of the
//! baseline comparison; empty without a baseline):
//! - a failed verdict is a `<failure>` whose message gives the figure;
//! - JUnit has no warning status, so a threshold in its warning band is a
//!   passing test case whose `<system-out>` starts with `warn:`; under
//!   `--strict`, where a warning fails the run, it is a `<failure>` of type
//!   `threshold-warning` instead, so the file agrees with the exit code;
//! - a regression row that was not judged (it carries a `note`: a tail
//!   percentile of too few requests) is `<skipped>` with the note;
//! - the run's metadata (run id, scenario, target, duration, rates, the
//!   exit verdict) is the `<properties>` of each suite.
//!
//! It follows the Jenkins xUnit plugin's `junit-10.xsd` (the integration
//! tests validate against it): `<testsuites>` carries only `name`, `tests`,
//! `failures`, `errors` and `time`. That is why it is written here with
//! `quick-xml` rather than with `quick-junit`, which always puts a
//! `skipped` attribute on `<testsuites>`, which that schema rejects.

use super::{Report, ThresholdStatus};
use crate::exit::Exit;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use std::io;

/// One test case: its name, and how it ended.
struct Case {
    name: String,
    outcome: Outcome,
}

enum Outcome {
    Pass,
    /// Passed, with something to say (a warning).
    PassWith(String),
    Failure {
        kind: &'static str,
        message: String,
    },
    Skipped(String),
}

/// The JUnit XML of `r`, whose run ended with `exit`; `strict` as the
/// `--strict` flag (a warning fails).
pub fn render(r: &Report, exit: Exit, strict: bool) -> String {
    let suites = [
        ("thresholds", thresholds(r, strict)),
        ("regressions", regressions(r)),
    ];
    let props = properties(r, exit);
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut w, r, &suites, &props).expect("writing to memory cannot fail");
    let mut text = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    text.push('\n');
    text
}

fn thresholds(r: &Report, strict: bool) -> Vec<Case> {
    r.thresholds
        .iter()
        .map(|t| {
            let actual = t
                .actual
                .map_or_else(|| "no value".to_string(), |v| format!("actual {v}"));
            let outcome = match t.status {
                _ if !t.pass || t.status == ThresholdStatus::Fail => Outcome::Failure {
                    kind: "threshold",
                    message: format!("{} not met: {actual}", t.expr),
                },
                ThresholdStatus::Warn if strict => Outcome::Failure {
                    kind: "threshold-warning",
                    message: format!("{} in its warning band (--strict): {actual}", t.expr),
                },
                ThresholdStatus::Warn => Outcome::PassWith(format!(
                    "warn: {} met, but in its warning band: {actual}",
                    t.expr
                )),
                ThresholdStatus::Pass | ThresholdStatus::Fail => Outcome::Pass,
            };
            Case {
                name: t.expr.clone(),
                outcome,
            }
        })
        .collect()
}

fn regressions(r: &Report) -> Vec<Case> {
    r.regressions
        .iter()
        .map(|x| {
            let figures = format!(
                "baseline {}, current {} ({:+.2} %)",
                x.baseline, x.current, x.change_pct
            );
            let outcome = match (&x.note, x.pass) {
                (_, false) => Outcome::Failure {
                    kind: "regression",
                    message: format!("{} regressed: {figures}", x.metric),
                },
                (Some(note), true) => Outcome::Skipped(note.clone()),
                (None, true) => Outcome::Pass,
            };
            Case {
                name: x.metric.clone(),
                outcome,
            }
        })
        .collect()
}

/// The run's metadata, the same on each suite.
fn properties(r: &Report, exit: Exit) -> Vec<(&'static str, String)> {
    let verdict = match exit {
        Exit::Ok => "pass",
        Exit::Failed => "fail",
        Exit::BadInput => "bad-input",
        Exit::Incomplete => "incomplete",
    };
    let mut p = vec![
        ("run_id", r.run_id.clone()),
        ("scenario", r.scenario.clone()),
    ];
    if let Some(t) = &r.target {
        p.push(("target", t.url.clone()));
        p.push(("protocol", t.protocol.clone()));
    }
    p.extend([
        ("started_at", r.started_at.clone()),
        ("duration_s", r.duration_s.to_string()),
        ("target_rps", r.target_rps.to_string()),
        ("achieved_rps", r.achieved_rps.to_string()),
        ("success_rate", r.success_rate.to_string()),
        ("complete", r.complete.to_string()),
    ]);
    if let Some(why) = &r.incomplete_reason {
        p.push(("incomplete_reason", why.clone()));
    }
    p.extend([
        ("verdict", verdict.to_string()),
        ("exit_code", exit.code().to_string()),
        ("report_schema", r.schema.clone()),
    ]);
    p
}

fn failures(cases: &[Case]) -> usize {
    cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failure { .. }))
        .count()
}

/// Seconds as the schema's SUREFIRE_TIME wants them: digits, a point and at
/// most three decimals.
fn seconds(s: f64) -> String {
    format!("{:.3}", if s.is_finite() { s.max(0.0) } else { 0.0 })
}

type Suite = (&'static str, Vec<Case>);

fn write(
    w: &mut Writer<Vec<u8>>,
    r: &Report,
    suites: &[Suite],
    props: &[(&'static str, String)],
) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let tests: usize = suites.iter().map(|(_, c)| c.len()).sum();
    let failed: usize = suites.iter().map(|(_, c)| failures(c)).sum();
    let name = xml_safe(&format!("volley: {}", r.scenario));
    let time = seconds(r.duration_s);
    w.create_element("testsuites")
        .with_attributes([
            ("name", name.as_str()),
            ("tests", tests.to_string().as_str()),
            ("failures", failed.to_string().as_str()),
            ("errors", "0"),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            for (suite, cases) in suites {
                write_suite(w, r, suite, cases, props)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_suite(
    w: &mut Writer<Vec<u8>>,
    r: &Report,
    suite: &str,
    cases: &[Case],
    props: &[(&'static str, String)],
) -> io::Result<()> {
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
        .count();
    let classname = xml_safe(&format!("volley.{}.{suite}", r.scenario));
    let timestamp = xml_safe(&r.started_at);
    let time = seconds(r.duration_s);
    w.create_element("testsuite")
        .with_attributes([
            ("name", suite),
            ("tests", cases.len().to_string().as_str()),
            ("failures", failures(cases).to_string().as_str()),
            ("errors", "0"),
            ("skipped", skipped.to_string().as_str()),
            ("timestamp", timestamp.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                for (k, v) in props {
                    w.create_element("property")
                        .with_attributes([("name", *k), ("value", xml_safe(v).as_str())])
                        .write_empty()?;
                }
                Ok(())
            })?;
            for c in cases {
                write_case(w, &classname, c)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, classname: &str, c: &Case) -> io::Result<()> {
    let name = xml_safe(&c.name);
    let e = w
        .create_element("testcase")
        .with_attributes([("name", name.as_str()), ("classname", classname)]);
    match &c.outcome {
        Outcome::Pass => {
            e.write_empty()?;
        }
        Outcome::PassWith(out) => {
            e.write_inner_content(|w| {
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&xml_safe(out)))?;
                Ok(())
            })?;
        }
        Outcome::Failure { kind, message } => {
            e.write_inner_content(|w| {
                let message = xml_safe(message);
                w.create_element("failure")
                    .with_attributes([("type", *kind), ("message", message.as_str())])
                    .write_text_content(BytesText::new(&message))?;
                Ok(())
            })?;
        }
        Outcome::Skipped(why) => {
            e.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", xml_safe(why).as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Without the characters XML 1.0 cannot carry at all (control characters
/// other than tab and newlines): a name is the user's, and escaping does
/// not help those.
fn xml_safe(s: &str) -> String {
    s.chars()
        .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture;
    use crate::report::{Regression, ThresholdVerdict};

    fn report() -> Report {
        let mut r = fixture::report();
        r.scenario = "checkout & <pay>".into();
        r.thresholds = vec![
            ThresholdVerdict::new("p99 < 100ms".into(), Some(80.0), ThresholdStatus::Pass),
            ThresholdVerdict::new(
                "p99 < 100ms warn 50ms".into(),
                Some(80.0),
                ThresholdStatus::Warn,
            ),
            ThresholdVerdict::new("p50 < 1ms".into(), Some(20.0), ThresholdStatus::Fail),
        ];
        r.regressions = vec![
            Regression {
                metric: "p99_ms".into(),
                baseline: 40.0,
                current: 80.0,
                change_pct: 100.0,
                pass: false,
                note: None,
            },
            Regression {
                metric: "throughput_rps".into(),
                baseline: 999.0,
                current: 999.0,
                change_pct: 0.0,
                pass: true,
                note: None,
            },
            Regression {
                metric: "p999_ms".into(),
                baseline: 1.0,
                current: 9.0,
                change_pct: 800.0,
                pass: true,
                note: Some("too few requests".into()),
            },
        ];
        r
    }

    fn count(xml: &str, needle: &str) -> usize {
        xml.matches(needle).count()
    }

    #[test]
    fn one_case_per_verdict_with_failures_counted() {
        let xml = render(&report(), Exit::Failed, false);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
        assert!(xml.contains(
            r#"<testsuites name="volley: checkout &amp; &lt;pay&gt;" tests="6" failures="2" errors="0" time="60.000">"#
        ), "{xml}");
        assert!(
            xml.contains(
                r#"<testsuite name="thresholds" tests="3" failures="1" errors="0" skipped="0""#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testsuite name="regressions" tests="3" failures="1" errors="0" skipped="1""#
            ),
            "{xml}"
        );
        assert_eq!(count(&xml, "<testcase "), 6);
        assert_eq!(count(&xml, "<failure "), 2);
        assert!(
            xml.contains(r#"<failure type="threshold" message="p50 &lt; 1ms not met: actual 20">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<failure type="regression" message="p99_ms regressed: baseline 40, current 80 (+100.00 %)">"#), "{xml}");
        assert!(
            xml.contains(r#"<skipped message="too few requests"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn a_warning_passes_with_its_note_unless_strict() {
        let xml = render(&report(), Exit::Failed, false);
        assert!(xml.contains(
            "<system-out>warn: p99 &lt; 100ms warn 50ms met, but in its warning band: actual 80</system-out>"
        ), "{xml}");
        let strict = render(&report(), Exit::Failed, true);
        assert_eq!(count(&strict, "<failure "), 3);
        assert!(
            strict.contains(r#"<failure type="threshold-warning""#),
            "{strict}"
        );
        assert!(strict.contains(r#"tests="6" failures="3""#), "{strict}");
    }

    #[test]
    fn the_run_is_described_in_properties() {
        let mut r = report();
        r.thresholds.clear();
        r.regressions.clear();
        r.complete = false;
        r.incomplete_reason = Some("stopped".into());
        let xml = render(&r, Exit::Incomplete, false);
        for (k, v) in [
            ("run_id", "r"),
            ("scenario", "checkout &amp; &lt;pay&gt;"),
            ("duration_s", "60"),
            ("achieved_rps", "999.5"),
            ("complete", "false"),
            ("incomplete_reason", "stopped"),
            ("verdict", "incomplete"),
            ("exit_code", "3"),
        ] {
            // Each suite carries them.
            assert_eq!(
                count(&xml, &format!(r#"<property name="{k}" value="{v}"/>"#)),
                2,
                "{k} in {xml}"
            );
        }
        assert!(xml.contains(r#"tests="0" failures="0""#));
    }

    #[test]
    fn control_characters_never_reach_the_xml() {
        let mut r = report();
        r.thresholds[0].expr = "p99\u{1} < 1s".into();
        let xml = render(&r, Exit::Ok, false);
        assert!(!xml.contains('\u{1}'));
        assert!(xml.contains(r#"<testcase name="p99 &lt; 1s""#), "{xml}");
    }

    #[test]
    fn times_fit_the_surefire_pattern() {
        assert_eq!(seconds(1234.56789), "1234.568");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-1.0), "0.000");
    }
}
