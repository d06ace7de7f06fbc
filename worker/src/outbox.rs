//! The run's reports on their way to the coordinator, so that none is lost
//! to an outage or to a coordinator that dies.
//!
//! Two queues, both per run:
//!
//! - *pending*: reports made while the coordinator was unreachable, kept
//!   (up to [`MAX_BUFFERED`], the oldest dropped first) and delivered in
//!   order after the next reconnect;
//! - *recent*: the last [`RESEND`] reports handed to a stream. A coordinator
//!   killed before it wrote them down never saw them, so they go again,
//!   first, after every reconnect; the coordinator drops what it already
//!   has (reports are deduplicated by run, worker and interval).
//!
//! Free of tokio and tonic: the session does the sending, this module only
//! decides what is sent and in which order. Generic over the message so the
//! tests can use plain numbers.

use std::collections::VecDeque;

/// Reports kept while the coordinator is unreachable (one per second: an
/// hour).
pub const MAX_BUFFERED: usize = 3600;

/// Reports sent again after a reconnect: enough to cover what a coordinator
/// that died had received but not yet written down.
pub const RESEND: usize = 10;

/// The undelivered and the recently delivered reports of one run.
#[derive(Debug)]
pub struct Outbox<M> {
    pending: VecDeque<M>,
    recent: VecDeque<M>,
}

impl<M> Default for Outbox<M> {
    fn default() -> Self {
        Outbox {
            pending: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }
}

impl<M: Clone> Outbox<M> {
    /// Keeps a report made while the coordinator is unreachable. When
    /// [`MAX_BUFFERED`] are already kept, the *oldest* is dropped to make
    /// room: after a long outage the coordinator gets the latest hour.
    pub fn hold(&mut self, m: M) {
        if self.pending.len() >= MAX_BUFFERED {
            self.pending.pop_front();
        }
        self.pending.push_back(m);
    }

    /// Notes that `m` is being handed to the stream, and gives it back to
    /// send: if the coordinator dies before it writes `m` down, `m` goes
    /// again after the reconnect (see [`Outbox::replay`]). Call it before
    /// sending, so a send that fails is covered too.
    pub fn sending(&mut self, m: M) -> M {
        if self.recent.len() >= RESEND {
            self.recent.pop_front();
        }
        self.recent.push_back(m.clone());
        m
    }

    /// What to send after a reconnect, in order: the last [`RESEND`] reports
    /// sent, again, then every pending one (each noted with
    /// [`Outbox::sending`] as it is taken). Stop early when the stream breaks:
    /// pending reports not yet taken stay pending.
    pub fn replay(&mut self) -> Replay<'_, M> {
        Replay {
            outbox: self,
            again: Some(0),
        }
    }

    /// Reports waiting for a connection.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Reports held until their batch is due, for a run whose assignment asks
/// for them `report_every_s` seconds at a time: the coordinator of
/// thousands of workers pays per message, far more than per report (see
/// `merge::report_every` on its side). Seconds are batched by their index,
/// so every worker sends its batch on the same seconds; a message that is
/// not a second's report (`Done`) takes everything held with it.
#[derive(Debug)]
pub struct Batch<M> {
    every: u32,
    held: Vec<M>,
}

impl<M> Batch<M> {
    /// Batches of `every` seconds; 0 (an older coordinator) and 1 hold
    /// nothing.
    pub fn new(every: u32) -> Self {
        Batch {
            every: every.max(1),
            held: Vec::new(),
        }
    }

    /// Seconds a batch holds.
    pub fn every(&self) -> u32 {
        self.every
    }

    /// Takes `m`, the report of second `index` (`None`: any other message),
    /// and returns what is due now, in order: nothing until the last second
    /// of a batch (an index one below a multiple of `every`), then the
    /// whole batch.
    pub fn push(&mut self, index: Option<u32>, m: M) -> Vec<M> {
        self.held.push(m);
        match index {
            Some(i) if (i + 1) % self.every != 0 => Vec::new(),
            _ => std::mem::take(&mut self.held),
        }
    }

    /// Everything held, in order (the connection is gone: into the outbox).
    pub fn take(&mut self) -> Vec<M> {
        std::mem::take(&mut self.held)
    }
}

/// The reports to send after a reconnect; see [`Outbox::replay`].
pub struct Replay<'a, M> {
    outbox: &'a mut Outbox<M>,
    /// The next recent report to send again; `None` once they all went
    /// (then `recent` changes as pending reports are taken).
    again: Option<usize>,
}

impl<M: Clone> Iterator for Replay<'_, M> {
    type Item = M;

    fn next(&mut self) -> Option<M> {
        if let Some(i) = self.again {
            if let Some(m) = self.outbox.recent.get(i) {
                self.again = Some(i + 1);
                return Some(m.clone());
            }
            self.again = None;
        }
        let m = self.outbox.pending.pop_front()?;
        Some(self.outbox.sending(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(o: &mut Outbox<u32>, ms: impl IntoIterator<Item = u32>) {
        for m in ms {
            o.sending(m);
        }
    }

    #[test]
    fn a_fresh_outbox_replays_nothing() {
        let mut o = Outbox::<u32>::default();
        assert_eq!(o.replay().count(), 0);
    }

    #[test]
    fn reports_made_while_away_are_delivered_in_order_after_the_reconnect() {
        let mut o = Outbox::default();
        for m in 1..=5 {
            o.hold(m);
        }
        assert_eq!(o.pending(), 5);
        assert_eq!(o.replay().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn the_buffer_is_capped_and_drops_the_oldest_first() {
        // The README's "buffer their per-second reports (up to an hour)".
        assert_eq!(MAX_BUFFERED, 3600, "an hour of one report a second");
        let mut o = Outbox::default();
        let n = MAX_BUFFERED as u32;
        for m in 0..n + 3 {
            o.hold(m);
        }
        assert_eq!(o.pending(), MAX_BUFFERED);
        let delivered: Vec<u32> = o.replay().collect();
        // 0, 1 and 2 were dropped; the newest report is kept.
        assert_eq!(delivered.first(), Some(&3));
        assert_eq!(delivered.last(), Some(&(n + 2)));
        assert_eq!(delivered, (3..n + 3).collect::<Vec<_>>());
    }

    #[test]
    fn the_last_ten_sent_go_again_after_a_reconnect() {
        let mut o = Outbox::default();
        sent(&mut o, 1..=15);
        assert_eq!(o.replay().collect::<Vec<_>>(), (6..=15).collect::<Vec<_>>());
        // Replaying does not forget them: a second reconnect sends them
        // again.
        assert_eq!(o.replay().collect::<Vec<_>>(), (6..=15).collect::<Vec<_>>());
    }

    #[test]
    fn fewer_than_ten_sent_all_go_again() {
        let mut o = Outbox::default();
        sent(&mut o, [7, 8]);
        assert_eq!(o.replay().collect::<Vec<_>>(), vec![7, 8]);
    }

    #[test]
    fn recent_reports_go_before_pending_ones_and_pending_ones_become_recent() {
        let mut o = Outbox::default();
        sent(&mut o, 1..=10);
        o.hold(11);
        o.hold(12);
        assert_eq!(o.replay().collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
        // Delivered pending reports are now among the last ten sent.
        assert_eq!(o.replay().collect::<Vec<_>>(), (3..=12).collect::<Vec<_>>());
        assert_eq!(o.pending(), 0);
    }

    #[test]
    fn a_replay_cut_short_keeps_the_pending_reports_not_yet_taken() {
        let mut o = Outbox::default();
        sent(&mut o, [1, 2]);
        for m in 3..=6 {
            o.hold(m);
        }
        // The stream breaks after the recent ones and one pending report.
        assert_eq!(o.replay().take(3).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(o.pending(), 3);
        // The report taken counts as sent, so it goes again with the rest.
        assert_eq!(o.replay().collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn reports_go_each_second_unless_batched() {
        for every in [0, 1] {
            let mut b = Batch::new(every);
            assert_eq!(b.every(), 1);
            for i in 0..5 {
                assert_eq!(b.push(Some(i), i), vec![i]);
            }
        }
    }

    #[test]
    fn batches_close_on_the_same_seconds_for_every_worker() {
        let mut b = Batch::new(3);
        let sent: Vec<Vec<u32>> = (0..8).map(|i| b.push(Some(i), i)).collect();
        let empty = Vec::<u32>::new();
        assert_eq!(
            sent,
            [
                empty.clone(),
                empty.clone(),
                vec![0, 1, 2],
                empty.clone(),
                empty.clone(),
                vec![3, 4, 5],
                empty.clone(),
                empty,
            ]
        );
        // The run's end (Done) takes the rest with it, in order.
        assert_eq!(b.push(None, 100), vec![6, 7, 100]);
        assert!(b.take().is_empty());
    }

    #[test]
    fn a_batch_cut_by_a_lost_connection_is_given_back_in_order() {
        let mut b = Batch::new(4);
        assert!(b.push(Some(4), 4).is_empty());
        assert!(b.push(Some(5), 5).is_empty());
        assert_eq!(b.take(), vec![4, 5]);
        // A joiner's first second need not start a batch: it closes with
        // the others'.
        assert!(b.push(Some(6), 6).is_empty());
        assert_eq!(b.push(Some(7), 7), vec![6, 7]);
    }

    #[test]
    fn a_report_whose_send_failed_goes_again() {
        let mut o = Outbox::default();
        // Noted, then the stream turned out closed.
        let _lost = o.sending(1);
        assert_eq!(o.replay().collect::<Vec<_>>(), vec![1]);
    }
}
