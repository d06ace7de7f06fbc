//! The coordinator's shared state: settings, the worker registry, the run
//! slot and the reports of finished runs.

use crate::registry::{Registry, Route};
use crate::run::sink::Sink;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Shared token; `None` disables authentication (loopback or explicit
    /// `--insecure-no-auth` only).
    pub token: Option<String>,
    /// A worker silent this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// How often workers send heartbeats.
    pub heartbeat_interval: Duration,
    /// Where runs are written as they happen, so a restarted coordinator can
    /// resume them (`None`: nothing is written).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            token: None,
            heartbeat_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            data_dir: None,
        }
    }
}

/// The running run: its id, the switch that stops it early, its events.
type CurrentRun = (String, watch::Sender<Option<String>>, Arc<Sink>);

/// Reports of finished runs kept for `GetReport`.
const KEEP_REPORTS: usize = 32;

pub struct Coordinator {
    pub config: CoordinatorConfig,
    pub metrics: Arc<crate::metrics::Metrics>,
    registry: Mutex<Registry>,
    /// Signalled whenever a worker joins or leaves.
    pub changed: Notify,
    run_active: AtomicBool,
    /// Signalled when the run slot is free again.
    run_ended: Notify,
    /// Set once the coordinator shuts down: no new run is accepted.
    shutting_down: AtomicBool,
    /// The running run: its id, the switch that stops it early, and its
    /// events for clients that attach.
    current: Mutex<Option<CurrentRun>>,
    /// Workers a resumed run waits for, and the route each gets back when it
    /// reconnects.
    expected: Mutex<HashMap<Uuid, Route>>,
    reports: Mutex<VecDeque<(String, String)>>,
    /// Files uploaded for a run not yet submitted.
    pub uploads: crate::uploads::Uploads,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            config,
            metrics: Arc::default(),
            registry: Mutex::new(Registry::default()),
            changed: Notify::new(),
            run_active: AtomicBool::new(false),
            run_ended: Notify::new(),
            shutting_down: AtomicBool::new(false),
            current: Mutex::new(None),
            expected: Mutex::new(HashMap::new()),
            reports: Mutex::new(VecDeque::new()),
            uploads: crate::uploads::Uploads::default(),
        })
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every mutation is a single insert/remove), so recover from poison.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the single run slot; false if a run is already going.
    pub fn try_begin_run(&self) -> bool {
        !self.run_active.swap(true, Ordering::AcqRel)
    }

    /// Whether the coordinator is shutting down (no new runs).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Shuts the coordinator down gracefully (SIGTERM, SIGINT): refuses new
    /// runs, stops the running one like `volley stop` would (its partial
    /// report goes to its client and to the data dir), waits up to `within`
    /// for it to end, then ends every worker's session so the workers know.
    /// Returns whether the run (if any) ended in time.
    pub async fn shut_down(&self, reason: &str, within: Duration) -> bool {
        self.shutting_down.store(true, Ordering::Release);
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(id, _, _)| id.clone());
        if let Some(id) = current {
            self.request_stop(&id, reason);
        }
        let ended = tokio::time::timeout(within, async {
            loop {
                let notified = self.run_ended.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !self.run_active.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok();
        for tx in self.registry().outbounds() {
            let _ = tx.try_send(Err(tonic::Status::unavailable(
                "the coordinator is shutting down",
            )));
        }
        ended
    }

    pub fn end_run(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.run_active.store(false, Ordering::Release);
        self.run_ended.notify_waiters();
    }

    /// Registers the running run and its event sink; the receiver yields a
    /// reason when someone asks it to stop.
    pub fn register_run(&self, run_id: &str, sink: Arc<Sink>) -> watch::Receiver<Option<String>> {
        let (tx, rx) = watch::channel(None);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((run_id.to_string(), tx, sink));
        rx
    }

    /// Asks the running run to stop; false when no such run is going.
    pub fn request_stop(&self, run_id: &str, reason: &str) -> bool {
        let guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((id, tx, _)) if id == run_id => tx.send(Some(reason.to_string())).is_ok(),
            _ => false,
        }
    }

    /// The event sink of the running run `run_id`.
    pub fn sink(&self, run_id: &str) -> Option<Arc<Sink>> {
        let guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(id, _, _)| id == run_id)
            .map(|(_, _, s)| s.clone())
    }

    /// A resumed run waits for this worker: give it `route` when it says
    /// hello again.
    pub fn expect(&self, id: Uuid, route: Route) {
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, route);
    }

    /// The route a reconnecting worker gets back, if a run waits for it.
    pub fn take_expected(&self, id: &Uuid) -> Option<Route> {
        self.expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    pub fn store_report(&self, run_id: &str, json: String) {
        let mut r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= KEEP_REPORTS {
            r.pop_front();
        }
        r.push_back((run_id.to_string(), json));
    }

    pub fn report(&self, run_id: &str) -> Option<String> {
        let r = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .find(|(id, _)| id == run_id)
            .map(|(_, j)| j.clone())
    }
}
