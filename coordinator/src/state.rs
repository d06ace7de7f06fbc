//! The coordinator's shared state: settings, the worker registry, the run
//! slot and the reports of finished runs.

use crate::registry::Registry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Shared token; `None` disables authentication (loopback or explicit
    /// `--insecure-no-auth` only).
    pub token: Option<String>,
    /// A worker silent this long is declared lost.
    pub heartbeat_timeout: Duration,
    /// How often workers send heartbeats.
    pub heartbeat_interval: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            token: None,
            heartbeat_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
        }
    }
}

/// Reports of finished runs kept for `GetReport`.
const KEEP_REPORTS: usize = 32;

pub struct Coordinator {
    pub config: CoordinatorConfig,
    registry: Mutex<Registry>,
    /// Signalled whenever a worker joins or leaves.
    pub changed: Notify,
    run_active: AtomicBool,
    /// The running run's id and the switch that stops it early.
    stop: Mutex<Option<(String, watch::Sender<Option<String>>)>>,
    reports: Mutex<VecDeque<(String, String)>>,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Arc<Coordinator> {
        Arc::new(Coordinator {
            config,
            registry: Mutex::new(Registry::default()),
            changed: Notify::new(),
            run_active: AtomicBool::new(false),
            stop: Mutex::new(None),
            reports: Mutex::new(VecDeque::new()),
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

    pub fn end_run(&self) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.run_active.store(false, Ordering::Release);
    }

    /// Registers the running run; the receiver yields a reason when someone
    /// asks it to stop.
    pub fn stop_switch(&self, run_id: &str) -> watch::Receiver<Option<String>> {
        let (tx, rx) = watch::channel(None);
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some((run_id.to_string(), tx));
        rx
    }

    /// Asks the running run to stop; false when no such run is going.
    pub fn request_stop(&self, run_id: &str, reason: &str) -> bool {
        let guard = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((id, tx)) if id == run_id => tx.send(Some(reason.to_string())).is_ok(),
            _ => false,
        }
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
