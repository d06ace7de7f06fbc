//! The CLI's side: submit a scenario, stream its events, attach again after
//! a broken stream (or from another terminal), stop a run, fetch reports
//! and the events of ended runs (from memory or the data dir), list the
//! workers and the runs.

use crate::run::{self, RunSpec, Source};
use crate::runs::{RunState, RunStatus};
use crate::state::{Coordinator, Known};
use crate::store::{self, RunMeta};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use volley_proto::pb::run_event::Event as Ev;
use volley_proto::{auth, pb};

pub struct Control {
    coord: Arc<Coordinator>,
}

impl Control {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Control { coord }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::run_control_server::RunControl for Control {
    type SubmitRunStream = EventStream;
    type AttachRunStream = EventStream;

    async fn submit_run(
        &self,
        req: Request<pb::SubmitRunRequest>,
    ) -> Result<Response<EventStream>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let req = req.into_inner();
        let mut files: std::collections::BTreeMap<String, Vec<u8>> =
            req.files.into_iter().map(|f| (f.name, f.data)).collect();
        if !req.upload_id.is_empty() {
            let uploaded = self.coord.uploads.take(&req.upload_id).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "upload {} is unknown or expired; upload the files again",
                    req.upload_id
                ))
            })?;
            files.extend(uploaded);
        }
        let source = Source {
            scenario_toml: req.scenario_toml,
            scenario_name: req.scenario_name,
            builtin_target_url: req.builtin_target_url,
            files,
            vars: req.vars.into_iter().map(|h| (h.name, h.value)).collect(),
            env: req.env.into_iter().map(|h| (h.name, h.value)).collect(),
        };
        let scenario = source.scenario().map_err(Status::invalid_argument)?;
        let min_workers = req.min_workers.max(1) as usize;
        let wait = Duration::from_nanos(req.wait_nanos).min(Duration::from_secs(3600));
        if self.coord.is_shutting_down() {
            return Err(Status::unavailable(
                "the coordinator is shutting down; submit the run to its successor",
            ));
        }
        if !self.coord.try_begin_run() {
            return Err(Status::resource_exhausted(
                "another run is in progress on this coordinator",
            ));
        }
        let (tx, rx) = mpsc::channel(1024);
        let coord = self.coord.clone();
        tokio::spawn(async move {
            let spec = RunSpec {
                scenario,
                min_workers,
                wait,
            };
            run::execute(coord.clone(), spec, source, tx).await;
            coord.end_run();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn upload_files(
        &self,
        req: Request<tonic::Streaming<pb::FileChunk>>,
    ) -> Result<Response<pb::UploadFilesResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let mut chunks = req.into_inner();
        let mut upload = crate::uploads::Upload::default();
        while let Some(c) = chunks.message().await? {
            upload.add(c).map_err(Status::invalid_argument)?;
        }
        let files = upload.finish().map_err(Status::invalid_argument)?;
        let upload_id = self
            .coord
            .uploads
            .keep(files)
            .map_err(Status::resource_exhausted)?;
        Ok(Response::new(pb::UploadFilesResponse { upload_id }))
    }

    async fn attach_run(
        &self,
        req: Request<pb::AttachRunRequest>,
    ) -> Result<Response<EventStream>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let req = req.into_inner();
        check_run_id(&req.run_id)?;
        let events = match self.coord.known(&req.run_id) {
            Some(Known::Live(_, status)) if req.only_ended => {
                return Err(still_going(&status));
            }
            Some(Known::Live(sink, _)) => sink.attach(req.from_t_s),
            // The data dir has every second with its per-worker lines; the
            // memory only the merged ones.
            Some(Known::Ended { sink, .. })
                if self.stored(&req.run_id).is_none() && sink.is_some() =>
            {
                sink.expect("checked").attach(req.from_t_s)
            }
            Some(Known::Ended { evicted: true, .. }) if self.stored(&req.run_id).is_none() => {
                return Err(self.evicted(&req.run_id));
            }
            known => {
                let ended = match known {
                    Some(Known::Ended {
                        status,
                        report_json,
                        error,
                        ..
                    }) => Some((status, report_json, error)),
                    _ => None,
                };
                self.replay_ended(&req.run_id, req.from_t_s, ended)?
            }
        };
        Ok(Response::new(Box::pin(ReceiverStream::new(events))))
    }

    async fn stop_run(
        &self,
        req: Request<pb::StopRunRequest>,
    ) -> Result<Response<pb::StopRunResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let req = req.into_inner();
        check_run_id(&req.run_id)?;
        let reason = if req.reason.is_empty() {
            "stopped on request"
        } else {
            &req.reason
        };
        if self.coord.request_stop(&req.run_id, reason) {
            return Ok(Response::new(pb::StopRunResponse {}));
        }
        match self.status(&req.run_id) {
            Some(s) => Err(Status::failed_precondition(format!(
                "run {} is not in progress: it is {}",
                req.run_id, s.state
            ))),
            None => Err(unknown(&req.run_id)),
        }
    }

    async fn get_report(
        &self,
        req: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let id = req.into_inner().run_id;
        check_run_id(&id)?;
        if let Some(report_json) = self.coord.report(&id).or_else(|| {
            let dir = self.coord.config.data_dir.as_deref()?;
            store::read_report(dir, &id).map(Bytes::from)
        }) {
            return Ok(Response::new(pb::GetReportResponse { report_json }));
        }
        match self.status(&id) {
            Some(s) if s.state.is_live() => Err(still_going(&s)),
            Some(_) if self.coord.report_evicted(&id) => Err(self.evicted(&id)),
            Some(s) => Err(Status::failed_precondition(format!(
                "run {id} ended without a report: it {}",
                s.state
            ))),
            None => Err(unknown(&id)),
        }
    }

    async fn list_workers(
        &self,
        req: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let workers = self.coord.registry().statuses();
        Ok(Response::new(pb::ListWorkersResponse {
            workers: workers.iter().map(pb::WorkerStatus::from).collect(),
        }))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let mut runs = self.coord.run_statuses();
        if let Some(dir) = self.coord.config.data_dir.as_deref() {
            // What memory knows is newer (a run going now is `running` in
            // its run.json too).
            let stored: Vec<RunStatus> = store::all_runs(dir)
                .iter()
                .map(RunMeta::status)
                .filter(|s| !runs.iter().any(|r| r.id == s.id))
                .collect();
            runs.extend(stored);
        }
        // Newest first: run ids start with their submission time.
        runs.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(pb::RunStatus::from).collect(),
        }))
    }
}

impl Control {
    /// Run `id`'s report was let go to keep newer ones in memory
    /// (`--keep-reports-mib`).
    fn evicted(&self, id: &str) -> Status {
        Status::failed_precondition(format!(
            "run {id}'s report is no longer in this coordinator's memory: it keeps the newest \
             reports up to {} MiB in all (`volley serve --keep-reports-mib`); \
             `volley serve --data-dir DIR` keeps every report on disk",
            self.coord.config.keep_reports_bytes / (1024 * 1024)
        ))
    }

    /// The stored run `id` in the data dir, if there is one.
    fn stored(&self, id: &str) -> Option<RunMeta> {
        store::read_meta(self.coord.config.data_dir.as_deref()?, id)
    }

    /// What `volley runs` would say of run `id`.
    fn status(&self, id: &str) -> Option<RunStatus> {
        match self.coord.known(id) {
            Some(Known::Live(_, s)) | Some(Known::Ended { status: s, .. }) => Some(s),
            None => self.stored(id).map(|m| m.status()),
        }
    }

    /// An ended run's events, as its client got them: accepted, started,
    /// every second from `from_t_s` on, finished. From the data dir when it
    /// has the run (the seconds with their per-worker lines), else from
    /// what memory kept (`ended`: the report alone).
    fn replay_ended(
        &self,
        id: &str,
        from_t_s: u32,
        ended: Option<(RunStatus, Bytes, String)>,
    ) -> Result<mpsc::Receiver<Result<pb::RunEvent, Status>>, Status> {
        let dir = self.coord.config.data_dir.clone();
        let stored = self.stored(id);
        let (started, seconds_from, finished) = match (stored, ended) {
            (Some(meta), mem) => {
                let listed = meta.status();
                if meta.status == "running" && listed.state == RunState::Abandoned {
                    // A coordinator died during it and this one did not
                    // resume it: what was measured is there, the report not.
                    return Err(Status::failed_precondition(format!(
                        "run {id} was abandoned by a coordinator that stopped during it; \
                         it has no report"
                    )));
                }
                let report_json = dir
                    .as_deref()
                    .and_then(|d| store::read_report(d, id))
                    .map(Bytes::from)
                    .or_else(|| mem.as_ref().map(|(_, r, _)| r.clone()))
                    .unwrap_or_default();
                let error = mem.map(|(_, _, e)| e).unwrap_or_default();
                let started = pb::RunStarted {
                    run_id: id.to_string(),
                    workers: meta.members.len() as u32,
                    start_at_unix_nanos: meta.start_unix_nanos,
                };
                (
                    Some(started),
                    dir,
                    finished(id, listed.state, error, report_json),
                )
            }
            (None, Some((status, report_json, error))) => {
                (None, None, finished(id, status.state, error, report_json))
            }
            (None, None) => return Err(unknown(id)),
        };
        let (tx, rx) = mpsc::channel(64);
        let id = id.to_string();
        tokio::spawn(async move {
            let ev = |e| Ok(pb::RunEvent { event: Some(e) });
            let accepted = pb::RunAccepted { run_id: id.clone() };
            if tx.send(ev(Ev::Accepted(accepted))).await.is_err() {
                return;
            }
            if let Some(s) = started {
                if tx.send(ev(Ev::Started(s))).await.is_err() {
                    return;
                }
            }
            if let Some(dir) = seconds_from {
                let seconds = tokio::task::spawn_blocking(move || store::read_seconds(&dir, &id))
                    .await
                    .unwrap_or_default();
                for s in seconds.into_iter().filter(|s| s.t_s >= from_t_s) {
                    if tx.send(ev(Ev::Interval(s))).await.is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(ev(Ev::Finished(finished))).await;
        });
        Ok(rx)
    }
}

fn finished(id: &str, state: RunState, error: String, report_json: Bytes) -> pb::RunFinished {
    pb::RunFinished {
        run_id: id.to_string(),
        outcome: if state == RunState::Failed {
            "failed"
        } else {
            "completed"
        }
        .into(),
        error,
        report_json,
    }
}

fn check_run_id(id: &str) -> Result<(), Status> {
    volley_proto::convert::check_run_id(id).map_err(Status::invalid_argument)
}

fn unknown(id: &str) -> Status {
    Status::not_found(format!(
        "no run {id} on this coordinator (`volley runs` lists the runs it knows)"
    ))
}

fn still_going(s: &RunStatus) -> Status {
    Status::failed_precondition(format!(
        "run {} is still {} ({:.0} of {:.0} s); `volley attach {}` follows it and writes its \
         report at the end, `volley stop {}` ends it now",
        s.id, s.state, s.elapsed_s, s.duration_s, s.id, s.id
    ))
}
