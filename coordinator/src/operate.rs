//! The operator's commands on a running cluster, each a client of
//! `RunControl` with the same connection, token and TLS settings as
//! `volley run --coordinator`:
//!
//! - `volley workers`, `volley runs`: an aligned table, or with `--output
//!   json` a JSON array with one object per worker or run.
//! - `volley stop RUN_ID`: the graceful stop a signal to the submitting
//!   client gives (the load ends, the report is kept, marked incomplete);
//!   it waits until the run has ended.
//! - `volley fetch RUN_ID`: writes an ended run's directory, the same files
//!   `volley run` writes, from the events the coordinator kept (in its
//!   `--data-dir`, so after a restart too). A run still going is refused
//!   (exit 3) with the way to follow it: fetching half a run and calling it
//!   its report would mislead.
//! - `volley attach RUN_ID`: follows a run with the same follower as
//!   `volley run`, and writes its directory at the end; Ctrl-C detaches
//!   and leaves the run going.
//!
//! Exit codes are the contract's: 2 for bad input (a malformed or unknown
//! run id, stopping a run that already ended, a wrong token), 3 when what was asked cannot be done (no
//! coordinator, a run not ended yet), and for `fetch` and `attach` the
//! verdict of the run's report, as `volley run` would have exited.

use crate::client::{refused, Client, Connection, FollowOptions, Follower, OnInterrupt};
use crate::exit::{CliError, Exit};
use crate::report::Report;
use crate::runs::{format_start, RunStatus, WorkerStatus};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use volley_proto::pb;
use volley_proto::pb::run_event::Event as Ev;

/// How long a command tries to reach its coordinator.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How long `volley stop` waits for the run to end.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// How a command prints what it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// An aligned table for people.
    Table,
    /// A JSON array, one object per worker or run, for scripts.
    Json,
}

type InterruptFn = dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn check_id(run_id: &str) -> Result<(), CliError> {
    volley_proto::convert::check_run_id(run_id).map_err(CliError::bad_input)
}

/// `volley workers`.
pub async fn workers(conn: &Connection, listing: Listing) -> Result<Exit, CliError> {
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    let resp = client
        .list_workers(conn.request(pb::ListWorkersRequest {})?)
        .await
        .map_err(|s| refused(&s, "cannot list the workers"))?
        .into_inner();
    let workers = resp
        .workers
        .into_iter()
        .map(WorkerStatus::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::incomplete(format!("the coordinator sent a bad worker: {e}")))?;
    match listing {
        Listing::Json => println!("{}", json(&workers)),
        Listing::Table if workers.is_empty() => println!("no workers connected"),
        Listing::Table => print!("{}", workers_table(&workers)),
    }
    Ok(Exit::Ok)
}

/// `volley runs`.
pub async fn runs(conn: &Connection, listing: Listing) -> Result<Exit, CliError> {
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    let runs = list_runs(conn, &mut client).await?;
    match listing {
        Listing::Json => println!("{}", json(&runs)),
        Listing::Table if runs.is_empty() => println!("no runs"),
        Listing::Table => print!("{}", runs_table(&runs)),
    }
    Ok(Exit::Ok)
}

async fn list_runs(conn: &Connection, client: &mut Client) -> Result<Vec<RunStatus>, CliError> {
    let resp = client
        .list_runs(conn.request(pb::ListRunsRequest {})?)
        .await
        .map_err(|s| refused(&s, "cannot list the runs"))?
        .into_inner();
    resp.runs
        .into_iter()
        .map(RunStatus::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::incomplete(format!("the coordinator sent a bad run: {e}")))
}

/// Run `run_id` as `volley runs` lists it.
async fn run_status(
    conn: &Connection,
    client: &mut Client,
    run_id: &str,
) -> Result<RunStatus, CliError> {
    list_runs(conn, client)
        .await?
        .into_iter()
        .find(|r| r.id == run_id)
        .ok_or_else(|| {
            CliError::bad_input(format!(
                "no run {run_id} on this coordinator (`volley runs` lists the runs it knows)"
            ))
        })
}

/// Under `--output json`: the run as a one-element array, as `volley runs`
/// would list it.
async fn print_status(conn: &Connection, run_id: &str) -> Result<(), CliError> {
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    let status = run_status(conn, &mut client, run_id).await?;
    println!("{}", json(&[status]));
    Ok(())
}

/// `volley stop RUN_ID`: asks the run to stop, then waits until it has
/// ended (its partial report is then with its client and `volley fetch`).
pub async fn stop(conn: &Connection, run_id: &str, listing: Listing) -> Result<Exit, CliError> {
    check_id(run_id)?;
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    let stop = pb::StopRunRequest {
        run_id: run_id.to_string(),
        reason: "stopped with `volley stop`".into(),
    };
    client
        .stop_run(conn.request(stop)?)
        .await
        .map_err(|s| match s.code() {
            // A run that already ended: the id names no run to stop.
            tonic::Code::FailedPrecondition => CliError::bad_input(s.message().to_string()),
            _ => refused(&s, &format!("cannot stop run {run_id}")),
        })?;
    eprintln!("volley: stopping run {run_id}");
    // Follow it to its end without replaying its seconds.
    let attach = pb::AttachRunRequest {
        run_id: run_id.to_string(),
        from_t_s: u32::MAX,
        only_ended: false,
    };
    let mut events = client
        .attach_run(conn.request(attach)?)
        .await
        .map_err(|s| refused(&s, &format!("cannot follow run {run_id} to its end")))?
        .into_inner();
    let ended = tokio::time::timeout(STOP_WAIT, async {
        while let Ok(Some(e)) = events.message().await {
            if let Some(Ev::Finished(f)) = e.event {
                return Some(f);
            }
        }
        None
    })
    .await;
    let finished = match ended {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(CliError::incomplete(format!(
                "lost the coordinator before run {run_id} ended"
            )))
        }
        Err(_) => {
            return Err(CliError::incomplete(format!(
                "run {run_id} was asked to stop but did not end within {} s",
                STOP_WAIT.as_secs()
            )))
        }
    };
    let report: Option<Report> = serde_json::from_slice(&finished.report_json).ok();
    match listing {
        Listing::Json => print_status(conn, run_id).await?,
        Listing::Table => match report {
            Some(r) => eprintln!(
                "volley: run {run_id} stopped after {:.1} s: {} ok, {} errors, {} dropped; \
                 `volley fetch {run_id}` writes its partial report",
                r.duration_s, r.requests.ok, r.requests.errors, r.requests.dropped
            ),
            None => eprintln!("volley: run {run_id} ended without a report"),
        },
    }
    Ok(Exit::Ok)
}

/// `volley fetch RUN_ID [--out DIR]`: the run directory of a run that has
/// ended; exits as `volley run` would have for it.
pub async fn fetch(
    conn: &Connection,
    run_id: &str,
    out: Option<PathBuf>,
    listing: Listing,
    interrupt: &InterruptFn,
) -> Result<Exit, CliError> {
    check_id(run_id)?;
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    let attach = pb::AttachRunRequest {
        run_id: run_id.to_string(),
        from_t_s: 0,
        only_ended: true,
    };
    let events = client
        .attach_run(conn.request(attach)?)
        .await
        .map_err(|s| refused(&s, &format!("cannot fetch run {run_id}")))?
        .into_inner();
    let opts = FollowOptions {
        out,
        summary: listing == Listing::Table,
        ..FollowOptions::default()
    };
    let mut f = Follower::new(conn, &opts, "", 0.0, None, OnInterrupt::Detach);
    f.announce = false;
    let (exit, _) = f.follow(client, events, interrupt).await?;
    if listing == Listing::Json {
        print_status(conn, run_id).await?;
    }
    Ok(exit)
}

/// `volley attach RUN_ID`: follows a run (live lines unless quiet) and
/// writes its run directory at the end; exits as `volley run` would have.
pub async fn attach(
    conn: &Connection,
    run_id: &str,
    mut follow: FollowOptions,
    listing: Listing,
    interrupt: &InterruptFn,
) -> Result<Exit, CliError> {
    check_id(run_id)?;
    let mut client = conn.connect(CONNECT_WITHIN).await?;
    // Its name and length, for the live line.
    let status = run_status(conn, &mut client, run_id).await?;
    let attach = pb::AttachRunRequest {
        run_id: run_id.to_string(),
        from_t_s: 0,
        only_ended: false,
    };
    let events = client
        .attach_run(conn.request(attach)?)
        .await
        .map_err(|s| refused(&s, &format!("cannot attach to run {run_id}")))?
        .into_inner();
    eprintln!(
        "volley: following run {run_id} ({}, {})",
        status.scenario, status.state
    );
    follow.summary = listing == Listing::Table;
    let mut f = Follower::new(
        conn,
        &follow,
        &status.scenario,
        status.duration_s,
        None,
        OnInterrupt::Detach,
    );
    f.announce = false;
    let (exit, _) = f.follow(client, events, interrupt).await?;
    if listing == Listing::Json {
        print_status(conn, run_id).await?;
    }
    Ok(exit)
}

fn json<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string_pretty(items).expect("listings serialize")
}

/// The table of `volley workers`.
pub fn workers_table(workers: &[WorkerStatus]) -> String {
    let rows = workers
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                if w.host.is_empty() {
                    "-".into()
                } else {
                    w.host.clone()
                },
                w.version.clone(),
                w.weight.to_string(),
                w.threads.map_or("-".into(), |t| t.to_string()),
                w.clock_offset_ms
                    .map_or("-".into(), |ms| format!("{ms:+.3} ms")),
                format!("{:.1} s ago", w.last_heartbeat_ago_ms as f64 / 1000.0),
                w.run.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "HOST",
            "VERSION",
            "WEIGHT",
            "THREADS",
            "CLOCK OFFSET",
            "LAST HEARTBEAT",
            "RUN",
        ],
        rows,
    )
}

/// The table of `volley runs`.
pub fn runs_table(runs: &[RunStatus]) -> String {
    let rows = runs
        .iter()
        .map(|r| {
            let progress = if r.duration_s > 0.0 {
                format!(
                    "{:.0}/{:.0} s ({:.0}%)",
                    r.elapsed_s,
                    r.duration_s,
                    100.0 * r.elapsed_s / r.duration_s
                )
            } else {
                "-".into()
            };
            vec![
                r.id.clone(),
                r.scenario.clone(),
                r.state.to_string(),
                r.started_at.map_or("-".into(), format_start),
                progress,
                r.verdict.map_or("-".into(), |v| v.to_string()),
            ]
        })
        .collect();
    table(
        &["ID", "SCENARIO", "STATE", "STARTED", "PROGRESS", "VERDICT"],
        rows,
    )
}

/// Columns padded to their widest cell, two spaces apart; the last one is
/// not padded (no trailing blanks).
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{RunState, Verdict};

    #[test]
    fn the_runs_table_is_aligned_and_says_what_is_not_known() {
        let runs = [
            RunStatus {
                id: "20261127-101500-1a2b3c".into(),
                scenario: "peak".into(),
                state: RunState::Running,
                started_at: Some(1_700_000_000_000_000_000),
                elapsed_s: 15.2,
                duration_s: 60.0,
                verdict: None,
            },
            RunStatus {
                id: "20261126-090000-ffffff".into(),
                scenario: "a longer name".into(),
                state: RunState::Failed,
                started_at: None,
                elapsed_s: 0.0,
                duration_s: 0.0,
                verdict: Some(Verdict::Incomplete),
            },
        ];
        let t = runs_table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "ID                      SCENARIO       STATE    STARTED               PROGRESS       VERDICT",
                "20261127-101500-1a2b3c  peak           running  2023-11-14T22:13:20Z  15/60 s (25%)  -",
                "20261126-090000-ffffff  a longer name  failed   -                     -              incomplete",
            ]
        );
    }

    #[test]
    fn the_workers_table_shows_offset_heartbeat_and_run() {
        let w = WorkerStatus {
            id: "6f1c2a52-58b1-4c39-9a7e-0d3f0c1b2a99".into(),
            host: "pod-1".into(),
            version: "0.1.0".into(),
            weight: 3,
            threads: Some(2),
            clock_offset_ms: Some(-0.25),
            last_heartbeat_ago_ms: 420,
            run: Some("20261127-101500-1a2b3c".into()),
        };
        let t = workers_table(&[w]);
        assert_eq!(
            t.lines().nth(1).unwrap(),
            "6f1c2a52-58b1-4c39-9a7e-0d3f0c1b2a99  pod-1  0.1.0    3       2        -0.250 ms     0.4 s ago       20261127-101500-1a2b3c"
        );
        assert!(t.starts_with(
            "ID                                    HOST   VERSION  WEIGHT  THREADS  CLOCK OFFSET"
        ));
    }
}
