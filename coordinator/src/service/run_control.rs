//! The CLI's side: submit a scenario, stream its events, fetch reports.

use crate::run::{self, RunSpec};
use crate::scenario::{self, ScenarioTarget};
use crate::state::Coordinator;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
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

    async fn submit_run(
        &self,
        req: Request<pb::SubmitRunRequest>,
    ) -> Result<Response<EventStream>, Status> {
        auth::check(&req, self.coord.config.token.as_deref())?;
        let req = req.into_inner();
        let file = if req.scenario_name.is_empty() {
            "scenario"
        } else {
            &req.scenario_name
        };
        let mut scenario = scenario::parse(&req.scenario_toml, file)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let ScenarioTarget::Builtin(_) = scenario.target {
            if req.builtin_target_url.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "{file}: target.builtin: the built-in target runs only with `volley run` in local mode; \
                     in cluster mode set target.url (for example the chart's target Service)"
                )));
            }
            scenario.plan.target.url = req.builtin_target_url.clone();
            scenario
                .plan
                .validate()
                .map_err(|e| Status::invalid_argument(format!("{file}: {e}")))?;
        }
        let min_workers = req.min_workers.max(1) as usize;
        let wait = Duration::from_nanos(req.wait_nanos).min(Duration::from_secs(3600));
        if !self.coord.try_begin_run() {
            return Err(Status::resource_exhausted(
                "another run is in progress on this coordinator",
            ));
        }
        let (tx, rx) = mpsc::channel(1024);
        let coord = self.coord.clone();
        tokio::spawn(async move {
            run::execute(
                coord.clone(),
                RunSpec {
                    scenario,
                    min_workers,
                    wait,
                },
                tx,
            )
            .await;
            coord.end_run();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
