//! Which of the target's addresses a new connection goes to, and when a
//! connection is replaced.
//!
//! A host name may resolve to several addresses: the pods of a headless
//! Kubernetes Service, a round-robin DNS name. [`Addresses`] holds the
//! current list; [`refresh`], a task of the engine's runtime, resolves the
//! name again every `load.resolve_every`, so resolution is never on the
//! per-request path (and the connections consult the list only when they
//! open). A new connection goes to the address with the fewest live
//! connections (ties in turn), so connections spread evenly, and an address
//! that appears takes the new connections until it has its share. Kept-alive
//! connections stay where they are: `load.connection_lifetime` and
//! `load.max_requests_per_connection` ([`Lease`]) make them move.
//!
//! An address that refused a connection (or did not accept it within
//! [`ATTEMPT`]) is avoided for [`AVOID`] while another one works (a name
//! with an IPv6 and an IPv4 address and a target listening on one of them
//! works as with one address). An address that drops out of the list takes
//! no new request: its connections close once the requests on them are
//! answered. A failed resolution keeps the last good list.

use super::net::{Connector, Io};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// How long an address that refused a connection is tried last.
pub const AVOID: Duration = Duration::from_secs(5);
/// How long one address has to accept (and finish the TLS handshake) when
/// another is left to try: a pod that went away without a reset (its
/// packets dropped) costs this, not the request's whole timeout. The last
/// address has what is left of the request's timeout.
pub const ATTEMPT: Duration = Duration::from_secs(2);

/// One of the target's addresses and the connections to it.
#[derive(Debug)]
pub struct Slot {
    pub addr: SocketAddr,
    /// Connections open (or opening) to it that take requests.
    live: Cell<usize>,
    /// No longer among the addresses the name resolves to.
    gone: Cell<bool>,
    /// Refused a connection; tried last until then.
    avoid_until: Cell<Option<Instant>>,
}

/// The addresses the target's name resolves to now.
#[derive(Debug)]
pub struct Addresses {
    slots: RefCell<Vec<Rc<Slot>>>,
    /// Rotates the order among equally used addresses.
    turn: Cell<usize>,
}

impl Addresses {
    pub fn new(addrs: &[SocketAddr]) -> Rc<Addresses> {
        let a = Rc::new(Addresses {
            slots: RefCell::new(Vec::new()),
            turn: Cell::new(0),
        });
        a.update(addrs);
        a
    }

    /// Replaces the list (in resolution order, duplicates removed); an
    /// address kept keeps its connections. Returns whether it changed.
    pub fn update(&self, addrs: &[SocketAddr]) -> bool {
        let mut slots = self.slots.borrow_mut();
        let mut next: Vec<Rc<Slot>> = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            if next.iter().any(|s| s.addr == addr) {
                continue;
            }
            let slot = match slots.iter().find(|s| s.addr == addr) {
                Some(s) => s.clone(),
                None => Rc::new(Slot {
                    addr,
                    live: Cell::new(0),
                    gone: Cell::new(false),
                    avoid_until: Cell::new(None),
                }),
            };
            next.push(slot);
        }
        let changed = next.len() != slots.len()
            || next.iter().zip(slots.iter()).any(|(a, b)| a.addr != b.addr);
        for old in slots.iter() {
            if !next.iter().any(|s| s.addr == old.addr) {
                old.gone.set(true);
            }
        }
        *slots = next;
        changed
    }

    /// The current addresses, in resolution order.
    pub fn list(&self) -> Vec<SocketAddr> {
        self.slots.borrow().iter().map(|s| s.addr).collect()
    }

    /// The addresses to try for a new connection, best first: working
    /// before refused, then the fewest live connections, ties in turn.
    fn ranked(&self, now: Instant) -> Vec<Rc<Slot>> {
        let mut slots = self.slots.borrow().clone();
        let n = slots.len().max(1);
        let turn = self.turn.get();
        self.turn.set(turn.wrapping_add(1));
        let start = turn % n;
        // Positions counted from this turn's start, so ties rotate.
        let mut order: Vec<(bool, usize, usize, Rc<Slot>)> = slots
            .drain(..)
            .enumerate()
            .map(|(i, s)| {
                let avoided = s.avoid_until.get().is_some_and(|t| now < t);
                (avoided, s.live.get(), (i + n - start) % n, s)
            })
            .collect();
        order.sort_by_key(|&(avoided, live, pos, _)| (avoided, live, pos));
        order.into_iter().map(|(.., s)| s).collect()
    }
}

/// When connections are replaced (`load.connection_lifetime`,
/// `load.max_requests_per_connection`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Renewal {
    pub lifetime: Option<Duration>,
    pub max_requests: Option<u32>,
}

/// What a connection knows of its own life: it takes no new request once
/// it is [`worn`](Lease::worn). Checked when a connection picks up its
/// next request: a decrement and two comparisons, no timer.
#[derive(Debug)]
pub struct Lease {
    slot: Rc<Slot>,
    expires: Option<Instant>,
    /// Requests it may still take.
    left: u32,
}

impl Lease {
    /// Counts one request sent on the connection.
    #[inline]
    pub fn take(&mut self) {
        self.left = self.left.saturating_sub(1);
    }

    /// Whether the connection must take no new request: it took its last,
    /// outlived its lifetime or its address is gone.
    #[inline]
    pub fn worn(&self, now: Instant) -> bool {
        self.left == 0 || self.expires.is_some_and(|e| now >= e) || self.slot.gone.get()
    }

    /// The address it is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.slot.addr
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.live.set(self.slot.live.get().saturating_sub(1));
    }
}

/// An open connection and its lease: dropping it closes the connection.
pub struct Link {
    pub io: Io,
    pub lease: Lease,
}

/// Opens connections to the target's addresses.
pub struct Dialer {
    pub connector: Connector,
    pub addrs: Rc<Addresses>,
    renewal: Renewal,
}

impl Dialer {
    pub fn new(connector: Connector, addrs: Rc<Addresses>, renewal: Renewal) -> Dialer {
        Dialer {
            connector,
            addrs,
            renewal,
        }
    }

    /// Opens a connection to the best address, trying the others in order
    /// when it is refused or does not answer within [`ATTEMPT`].
    pub async fn connect(&self) -> io::Result<Link> {
        let now = Instant::now();
        let mut failed = None;
        let ranked = self.addrs.ranked(now);
        let last = ranked.len().saturating_sub(1);
        for (i, slot) in ranked.into_iter().enumerate() {
            // Counted before the connect completes, so connections opened
            // at the same moment spread too.
            slot.live.set(slot.live.get() + 1);
            let lease = Lease {
                expires: self.renewal.lifetime.map(|l| now + l),
                left: self.renewal.max_requests.unwrap_or(u32::MAX),
                slot,
            };
            let attempt = self.connector.connect(lease.slot.addr);
            let result = if i < last {
                tokio::time::timeout(ATTEMPT, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            } else {
                attempt.await
            };
            match result {
                Ok(io) => {
                    lease.slot.avoid_until.set(None);
                    return Ok(Link { io, lease });
                }
                Err(e) => {
                    lease.slot.avoid_until.set(Some(Instant::now() + AVOID));
                    failed = Some(e);
                }
            }
        }
        Err(failed.unwrap_or_else(|| io::Error::other("the target has no address")))
    }
}

/// Resolves `authority` (`host:port`) again every `every` and updates
/// `addrs`, until the engine's runtime ends. A failure, or a name that
/// resolves to nothing, keeps the last good list (and is logged once
/// until a resolution succeeds again).
pub async fn refresh(addrs: Rc<Addresses>, authority: String, every: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        let found = match tokio::net::lookup_host(authority.as_str()).await {
            Ok(found) => found.collect::<Vec<_>>(),
            Err(e) => {
                if !failing {
                    warn!(target_host = %authority, cause = %e, "cannot resolve the target again; keeping its last addresses");
                    failing = true;
                }
                continue;
            }
        };
        if found.is_empty() {
            if !failing {
                warn!(target_host = %authority, "the target resolves to no address; keeping its last addresses");
                failing = true;
            }
            continue;
        }
        failing = false;
        if addrs.update(&found) {
            info!(target_host = %authority, addresses = ?addrs.list(), "the target resolves to new addresses");
        }
    }
}

/// Whether `host` needs resolving at all (an IP literal does not).
pub fn is_name(host: &str) -> bool {
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 80))
    }

    fn lease(addrs: &Addresses, now: Instant) -> Lease {
        let slot = addrs.ranked(now).remove(0);
        slot.live.set(slot.live.get() + 1);
        Lease {
            slot,
            expires: None,
            left: u32::MAX,
        }
    }

    #[test]
    fn new_connections_go_to_the_least_used_address_in_turn() {
        let addrs = Addresses::new(&[a(1), a(2), a(1)]);
        assert_eq!(addrs.list(), vec![a(1), a(2)], "duplicates removed");
        let now = Instant::now();
        let mut held: Vec<Lease> = (0..6).map(|_| lease(&addrs, now)).collect();
        let on = |addrs: &Addresses, x: SocketAddr| {
            addrs
                .slots
                .borrow()
                .iter()
                .find(|s| s.addr == x)
                .unwrap()
                .live
                .get()
        };
        assert_eq!((on(&addrs, a(1)), on(&addrs, a(2))), (3, 3));
        // A new address takes the new connections until it has its share.
        assert!(addrs.update(&[a(1), a(2), a(3)]));
        assert!(!addrs.update(&[a(1), a(2), a(3)]));
        for _ in 0..3 {
            let l = lease(&addrs, now);
            assert_eq!(l.addr(), a(3));
            held.push(l);
        }
        // Closing connections frees their address's place.
        held.retain(|l| l.addr() != a(1));
        assert_eq!(on(&addrs, a(1)), 0);
        assert_eq!(lease(&addrs, now).addr(), a(1));
    }

    #[test]
    fn a_refused_address_is_tried_last_for_a_while() {
        let addrs = Addresses::new(&[a(1), a(2)]);
        let now = Instant::now();
        addrs.slots.borrow()[0].avoid_until.set(Some(now + AVOID));
        for _ in 0..4 {
            assert_eq!(addrs.ranked(now)[0].addr, a(2));
        }
        assert_eq!(addrs.ranked(now + AVOID).len(), 2);
    }

    #[test]
    fn a_lease_wears_out_by_count_age_or_a_vanished_address() {
        let addrs = Addresses::new(&[a(1), a(2)]);
        let now = Instant::now();
        let mut l = lease(&addrs, now);
        l.left = 2;
        l.expires = Some(now + Duration::from_secs(1));
        l.take();
        assert!(!l.worn(now));
        assert!(l.worn(now + Duration::from_secs(1)), "too old");
        l.take();
        assert!(l.worn(now), "took its last request");
        let mut m = lease(&addrs, now);
        m.take();
        assert!(!m.worn(now));
        let gone = m.addr();
        let kept = if gone == a(1) { a(2) } else { a(1) };
        addrs.update(&[kept]);
        assert!(m.worn(now), "its address is gone");
        assert_eq!(addrs.list(), vec![kept]);
    }

    #[test]
    fn ip_literals_are_not_resolved() {
        assert!(!is_name("127.0.0.1"));
        assert!(!is_name("[::1]"));
        assert!(is_name("svc.volley.test"));
        assert!(is_name("localhost"));
    }
}
