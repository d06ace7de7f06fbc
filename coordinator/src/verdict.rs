//! The CI verdict: regression against a baseline and the exit code, shared by
//! `volley run` and `volley report`.

use crate::analysis;
use crate::exit::{CliError, Exit};
use crate::report::{Report, ThresholdStatus};
use std::path::Path;

/// A saved baseline report and the allowed change.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub report: Report,
    pub threshold_pct: f64,
}

/// Reads a baseline report; any problem is bad input (exit 2), checked before
/// a run starts so nothing measured is lost over a typo.
pub fn load_baseline(path: &Path, threshold_pct: f64) -> Result<Baseline, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::bad_input(format!("--baseline {}: {e}", path.display())))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!(
            "--baseline {}: not a Volley report.json: {e}",
            path.display()
        ))
    })?;
    Ok(Baseline {
        report,
        threshold_pct,
    })
}

/// Fills `regressions` from the baseline.
pub fn apply_baseline(r: &mut Report, b: &Baseline) {
    r.regressions = analysis::compare(r, &b.report, b.threshold_pct);
}

/// Checks a `--junit FILE` before the run, so a typo costs no run: bad
/// input (exit 2) when FILE is a directory or its directory cannot be made.
pub fn check_junit_path(path: &Path) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::bad_input(format!(
            "--junit {}: is a directory; expected a file to write",
            path.display()
        )));
    }
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            CliError::bad_input(format!(
                "--junit {}: cannot create its directory: {e}",
                path.display()
            ))
        }),
        None => Ok(()),
    }
}

/// Writes the verdicts of `r` (which ended with `exit`) as JUnit XML to
/// `path` (`--junit`).
pub fn write_junit(path: &Path, r: &Report, exit: Exit, strict: bool) -> Result<(), CliError> {
    check_junit_path(path)?;
    let xml = crate::report::junit::render(r, exit, strict);
    crate::output::write_atomic(path, xml.as_bytes())
        .map_err(|e| CliError::incomplete(format!("cannot write --junit {}: {e}", path.display())))
}

/// The exit code a report warrants: 1 for a failed threshold or regression
/// (or a warning under `strict`), 3 for a run that did not complete, else 0.
pub fn exit_code(r: &Report, strict: bool) -> Exit {
    let failed = r
        .thresholds
        .iter()
        .any(|t| !t.pass || t.status == ThresholdStatus::Fail)
        || r.regressions.iter().any(|x| !x.pass);
    let warned = r
        .thresholds
        .iter()
        .any(|t| t.status == ThresholdStatus::Warn);
    if failed {
        Exit::Failed
    } else if !r.complete {
        Exit::Incomplete
    } else if warned && strict {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Regression, ThresholdVerdict};

    fn report() -> Report {
        serde_json::from_str(include_str!("../tests/data/report.json")).unwrap()
    }

    fn verdict(status: ThresholdStatus) -> ThresholdVerdict {
        ThresholdVerdict::new("p99 < 1s".into(), Some(1.0), status)
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        let mut r = report();
        r.thresholds = vec![verdict(ThresholdStatus::Pass)];
        assert_eq!(exit_code(&r, false), Exit::Ok);
        r.thresholds.push(verdict(ThresholdStatus::Warn));
        assert_eq!(exit_code(&r, false), Exit::Ok, "a warning keeps exit 0");
        assert_eq!(exit_code(&r, true), Exit::Failed, "unless --strict");
        r.complete = false;
        assert_eq!(exit_code(&r, false), Exit::Incomplete);
        r.thresholds.push(verdict(ThresholdStatus::Fail));
        assert_eq!(
            exit_code(&r, false),
            Exit::Failed,
            "a failed threshold wins over incomplete"
        );
        r.thresholds.clear();
        r.complete = true;
        r.regressions = vec![Regression {
            metric: "p99_ms".into(),
            baseline: 1.0,
            current: 2.0,
            change_pct: 100.0,
            pass: false,
            note: None,
        }];
        assert_eq!(exit_code(&r, false), Exit::Failed);
    }

    #[test]
    fn a_slower_run_regresses_against_its_baseline() {
        let base = report();
        let mut cur = report();
        cur.latency_ms.p99 = cur.latency_ms.p99.map(|v| v * 1.5);
        apply_baseline(
            &mut cur,
            &Baseline {
                report: base.clone(),
                threshold_pct: 10.0,
            },
        );
        assert!(
            cur.regressions
                .iter()
                .any(|x| x.metric == "p99_ms" && !x.pass),
            "{:?}",
            cur.regressions
        );
        let mut same = report();
        apply_baseline(
            &mut same,
            &Baseline {
                report: base,
                threshold_pct: 10.0,
            },
        );
        assert!(same.regressions.iter().all(|x| x.pass));
        assert_eq!(exit_code(&cur, false), Exit::Failed);
        assert_eq!(exit_code(&same, false), Exit::Ok);
    }
}
