//! The CLI's side: submit a scenario, stream its events, attach again after
//! a broken stream, stop a run, fetch reports.

use crate::run::{self, RunSpec, Source};
use crate::state::Coordinator;
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
        if let Some(sink) = self.coord.sink(&req.run_id) {
            return Ok(Response::new(Box::pin(ReceiverStream::new(
                sink.attach(req.from_t_s),
            ))));
        }
        // Already over: hand out its end.
        match self.coord.report(&req.run_id) {
            Some(report_json) => {
                let (tx, rx) = mpsc::channel(2);
                let ev = |e| Ok(pb::RunEvent { event: Some(e) });
                let _ = tx.try_send(ev(Ev::Accepted(pb::RunAccepted {
                    run_id: req.run_id.clone(),
                })));
                let finished = pb::RunFinished {
                    run_id: req.run_id,
                    outcome: "completed".into(),
                    error: String::new(),
                    report_json,
                };
                let _ = tx.try_send(ev(Ev::Finished(finished)));
                Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
            }
            None => Err(Status::not_found(format!(
                "no run {:?} on this coordinator",
                req.run_id
            ))),
        }
    }

    async fn stop_run(
        &self,
        req: Request<pb::StopRunRequest>,
    ) -> Result<Response<pb::StopRunResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let req = req.into_inner();
        let reason = if req.reason.is_empty() {
            "stopped on request"
        } else {
            &req.reason
        };
        if self.coord.request_stop(&req.run_id, reason) {
            Ok(Response::new(pb::StopRunResponse {}))
        } else {
            Err(Status::not_found(format!(
                "no run {:?} is in progress",
                req.run_id
            )))
        }
    }

    async fn get_report(
        &self,
        req: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let id = req.into_inner().run_id;
        match self.coord.report(&id) {
            Some(report_json) => Ok(Response::new(pb::GetReportResponse { report_json })),
            None => Err(Status::not_found(format!(
                "no finished run {id:?} on this coordinator"
            ))),
        }
    }
}
