//! Accepting an assignment: the plan and share checked, the target resolved
//! and probed with the same connect (and TLS handshake) the engine will
//! make, and the requests built once, so that a wrong URL, an unreachable
//! target or a request the engine could not send fails the run before any
//! load starts, with a message that says which.

use crate::engine::{self, EngineSetup};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use volley_plan::{Share, Target};
use volley_proto::convert::plan_from_wire;
use volley_proto::pb;

/// How long the target has to accept the probe's connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Validates an assignment (with the data files sent for it) and checks the
/// target is reachable; `Err` is the reason sent back in `Ready`.
pub async fn prepare(
    plan: Option<pb::Plan>,
    files: &BTreeMap<String, Vec<u8>>,
    share: Option<pb::Share>,
    share_from: f64,
    worker_id: &str,
) -> Result<EngineSetup, String> {
    let lookup = |name: &str| files.get(name).map(Vec::as_slice);
    let plan = plan_from_wire(plan.ok_or("assignment without a plan")?, &lookup)
        .map_err(|e| format!("bad plan: {e}"))?;
    let share = Share::try_from(share.ok_or("assignment without a share")?)
        .map_err(|e| format!("bad share: {e}"))?;
    let parts = volley_plan::model::url_parts(&plan.target.url)
        .ok_or_else(|| format!("bad target URL {:?}", plan.target.url))?;
    let authority = format!("{}:{}", parts.host, parts.port);
    let addrs = resolve(&authority).await?;
    probe_any(&plan.target, &addrs).await?;
    if !share_from.is_finite() || share_from < 0.0 {
        return Err(format!("bad share start {share_from}"));
    }
    let setup = EngineSetup {
        plan,
        share,
        share_from,
        addrs,
        worker_id: worker_id.to_owned(),
    };
    // Builds the requests once here too, so one the engine could not send
    // is reported now rather than as an empty run.
    engine::prepare(&setup)?;
    Ok(setup)
}

/// Every address `authority` resolves to, in order, without duplicates.
async fn resolve(authority: &str) -> Result<Vec<SocketAddr>, String> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in tokio::net::lookup_host(authority)
        .await
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
    {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(format!("{authority} resolves to no address"));
    }
    Ok(addrs)
}

/// Probes the addresses in order until one accepts: the target is reachable
/// when one of them is (a name with IPv6 and IPv4 addresses, a Service with
/// one pod not ready yet). The error names the first address.
async fn probe_any(target: &Target, addrs: &[SocketAddr]) -> Result<(), String> {
    let mut first = None;
    for &addr in addrs {
        match probe(target, addr).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or_else(|| format!("target {} has no address", target.url)))
}

/// Makes the same connect (and TLS handshake) the engine will make, so a
/// wrong address or certificate fails the run before any load starts.
async fn probe(target: &Target, addr: SocketAddr) -> Result<(), String> {
    let connector = engine::net::Connector::new(target)?;
    match tokio::time::timeout(PROBE_TIMEOUT, connector.connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let what = if connector.is_tls() {
                "is unreachable or failed the TLS handshake"
            } else {
                "is unreachable"
            };
            Err(format!("target {} ({addr}) {what}: {e}", target.url))
        }
        Err(_) => Err(format!(
            "target {} ({addr}) did not accept a connection within {}s",
            target.url,
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::render::testing;
    use volley_plan::Protocol;

    #[tokio::test]
    async fn an_assignment_without_a_plan_or_share_is_refused() {
        let files = BTreeMap::new();
        let e = prepare(None, &files, None, 0.0, "w").await.unwrap_err();
        assert_eq!(e, "assignment without a plan");
    }

    #[tokio::test]
    async fn the_probe_connects_to_a_listening_target_and_names_an_unreachable_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/");
        let plan = testing::plan(Protocol::Http1, &url, vec![]);
        probe(&plan.target, addr).await.unwrap();
        drop(listener);
        let e = probe(&plan.target, addr).await.unwrap_err();
        assert!(
            e.starts_with(&format!("target {url} ({addr}) is unreachable: ")),
            "{e}"
        );
    }
}
