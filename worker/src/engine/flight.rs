//! The replies one connection has in flight, polled on the connection's own
//! task, each only when it was woken, with no allocation per reply.
//!
//! HTTP/2 replies come back in any order, so each stream's reply is a
//! future of its own. A runtime task per stream costs an allocation, a
//! place in the run queue and a task header to set up and tear down for
//! every request. A `Flight` instead keeps up to `capacity` futures in
//! slots that are reused: a finished reply's slot (its box and its waker)
//! takes the next one in place. Each slot has its own waker, which marks
//! the slot in a bitmap and wakes the connection's task once; the task
//! then polls only the marked slots ([`Flight::poll`]).
//!
//! Nothing here knows HTTP/2 or tokio: it is a set of futures.

use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

/// Up to `capacity` futures in flight, each polled when it was woken.
pub struct Flight<F> {
    /// A slot's future; `None` while the slot is free. Boxed once, when the
    /// slot is first used, and reused in place after that.
    slots: Vec<Pin<Box<Option<F>>>>,
    /// Each slot's waker (marks the slot, wakes the owner).
    wakers: Vec<Waker>,
    /// Free slots, reused last-freed first (its memory is still in cache).
    free: Vec<usize>,
    len: usize,
    capacity: usize,
    ready: Arc<Ready>,
}

/// Which slots were woken since the owner last looked, and the owner's
/// waker.
struct Ready {
    bits: Box<[AtomicU64]>,
    owner: AtomicWaker,
}

struct SlotWaker {
    slot: usize,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let (word, bit) = (self.slot / 64, self.slot % 64);
        self.ready.bits[word].fetch_or(1 << bit, Ordering::AcqRel);
        // Takes the owner's waker: the slots woken before the owner polls
        // again wake it only once.
        self.ready.owner.wake();
    }
}

impl<F: Future<Output = ()>> Flight<F> {
    /// An empty flight for up to `capacity` futures (at least one).
    pub fn new(capacity: usize) -> Flight<F> {
        let capacity = capacity.max(1);
        let bits = (0..capacity.div_ceil(64)).map(|_| AtomicU64::new(0));
        Flight {
            slots: Vec::new(),
            wakers: Vec::new(),
            free: Vec::new(),
            len: 0,
            capacity,
            ready: Arc::new(Ready {
                bits: bits.collect(),
                owner: AtomicWaker::new(),
            }),
        }
    }

    /// Futures in flight.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether another future fits.
    #[inline]
    pub fn has_room(&self) -> bool {
        self.len < self.capacity
    }

    /// Adds `fut` and polls it once (so that it registers its waker):
    /// `Ok(true)` when it finished on that poll, `Ok(false)` when it is in
    /// flight, `Err(fut)` when the flight is full.
    pub fn push(&mut self, fut: F) -> Result<bool, F> {
        if !self.has_room() {
            return Err(fut);
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot].as_mut().set(Some(fut));
                slot
            }
            None => {
                let slot = self.slots.len();
                self.slots.push(Box::pin(Some(fut)));
                self.wakers.push(Waker::from(Arc::new(SlotWaker {
                    slot,
                    ready: self.ready.clone(),
                })));
                slot
            }
        };
        self.len += 1;
        Ok(self.poll_slot(slot))
    }

    /// Polls every future woken since the last call, each with its own
    /// waker, and has `cx` woken when another one is. Returns how many
    /// finished.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> usize {
        // Registered before the bits are read, so a wake-up in between is
        // not lost.
        self.ready.owner.register(cx.waker());
        let mut finished = 0;
        for word in 0..self.slots.len().div_ceil(64) {
            let mut bits = self.ready.bits[word].swap(0, Ordering::AcqRel);
            while bits != 0 {
                let slot = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if self.poll_slot(slot) {
                    finished += 1;
                }
            }
        }
        finished
    }

    /// Polls one slot's future; frees the slot and returns true when it
    /// finished. A slot woken after its future finished (or one woken
    /// twice) is simply polled again, or skipped when free.
    fn poll_slot(&mut self, slot: usize) -> bool {
        let Some(fut) = self.slots[slot].as_mut().as_pin_mut() else {
            return false;
        };
        let mut cx = Context::from_waker(&self.wakers[slot]);
        if fut.poll(&mut cx).is_pending() {
            return false;
        }
        self.slots[slot].as_mut().set(None);
        self.free.push(slot);
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Poll;

    /// A future that finishes once its `done` is set, counting its polls
    /// and keeping the waker it was last polled with.
    struct Probe {
        done: Rc<Cell<bool>>,
        polls: Rc<Cell<u32>>,
        waker: Rc<std::cell::RefCell<Option<Waker>>>,
    }

    #[derive(Clone, Default)]
    struct Handle {
        done: Rc<Cell<bool>>,
        polls: Rc<Cell<u32>>,
        waker: Rc<std::cell::RefCell<Option<Waker>>>,
    }

    impl Handle {
        fn probe(&self) -> Probe {
            Probe {
                done: self.done.clone(),
                polls: self.polls.clone(),
                waker: self.waker.clone(),
            }
        }
        /// What the reply's source does when it arrives: mark done, wake.
        fn finish(&self) {
            self.done.set(true);
            self.wake();
        }
        fn wake(&self) {
            if let Some(w) = self.waker.borrow().as_ref() {
                w.wake_by_ref();
            }
        }
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.done.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// The owner's waker: counts how often a slot woke it.
    #[derive(Default)]
    struct Owner(std::sync::atomic::AtomicU32);
    impl Wake for Owner {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn owner() -> (Arc<Owner>, Waker) {
        let o = Arc::new(Owner::default());
        (o.clone(), Waker::from(o))
    }

    #[test]
    fn a_future_that_finishes_at_once_frees_its_slot() {
        let mut f = Flight::new(2);
        let h = Handle::default();
        h.done.set(true);
        assert_eq!(f.push(h.probe()).ok(), Some(true));
        assert_eq!(h.polls.get(), 1);
        assert!(f.is_empty());
    }

    #[test]
    fn only_the_woken_futures_are_polled_and_the_owner_is_woken_once_per_batch() {
        let (o, w) = owner();
        let mut cx = Context::from_waker(&w);
        let mut f = Flight::new(100);
        let hs: Vec<Handle> = (0..70).map(|_| Handle::default()).collect();
        for h in &hs {
            assert_eq!(f.push(h.probe()).ok(), Some(false));
        }
        assert_eq!(f.len(), 70);
        assert_eq!(f.poll(&mut cx), 0, "nothing was woken");
        assert!(hs.iter().all(|h| h.polls.get() == 1));
        // Two replies arrive (one in each bitmap word), and one future is
        // woken without being done.
        hs[3].finish();
        hs[65].finish();
        hs[10].wake();
        assert_eq!(o.0.load(Ordering::Relaxed), 1, "one wake-up for the batch");
        assert_eq!(f.poll(&mut cx), 2);
        assert_eq!(f.len(), 68);
        for (i, h) in hs.iter().enumerate() {
            let want = if [3, 65, 10].contains(&i) { 2 } else { 1 };
            assert_eq!(h.polls.get(), want, "future {i}");
        }
        // Woken again after the owner polled: the owner is woken again.
        hs[0].finish();
        assert_eq!(o.0.load(Ordering::Relaxed), 2);
        assert_eq!(f.poll(&mut cx), 1);
        assert_eq!(f.poll(&mut cx), 0, "a wake-up is consumed once");
        assert_eq!(hs[0].polls.get(), 2);
    }

    #[test]
    fn a_full_flight_refuses_and_freed_slots_are_reused_without_growing() {
        let (_o, w) = owner();
        let mut cx = Context::from_waker(&w);
        let mut f = Flight::new(3);
        let mut hs: Vec<Handle> = (0..3).map(|_| Handle::default()).collect();
        for h in &hs {
            assert_eq!(f.push(h.probe()).ok(), Some(false));
        }
        assert!(!f.has_room());
        let extra = Handle::default();
        assert!(f.push(extra.probe()).is_err());
        assert_eq!(extra.polls.get(), 0, "a refused future is not polled");
        // A thousand more, one slot freed and taken each time.
        for n in 0..1000 {
            let i = n % 3;
            hs[i].finish();
            assert_eq!(f.poll(&mut cx), 1);
            hs[i] = Handle::default();
            assert_eq!(f.push(hs[i].probe()).ok(), Some(false));
        }
        assert_eq!(f.len(), 3);
        assert_eq!(f.slots.len(), 3, "no slot beyond the capacity was made");
        assert_eq!(f.wakers.len(), 3);
    }

    #[test]
    fn a_stale_wake_up_of_a_reused_slot_only_polls_its_new_future() {
        let (_o, w) = owner();
        let mut cx = Context::from_waker(&w);
        let mut f = Flight::new(1);
        let old = Handle::default();
        f.push(old.probe()).ok();
        let stale = old.waker.borrow().clone().unwrap();
        old.finish();
        assert_eq!(f.poll(&mut cx), 1);
        // Woken once more after it finished: the slot is free, nothing runs.
        stale.wake_by_ref();
        assert_eq!(f.poll(&mut cx), 0);
        let new = Handle::default();
        assert_eq!(f.push(new.probe()).ok(), Some(false));
        stale.wake_by_ref();
        assert_eq!(f.poll(&mut cx), 0, "the new future is not done");
        assert_eq!(new.polls.get(), 2, "polled once more, harmlessly");
        assert_eq!(old.polls.get(), 2);
        new.finish();
        assert_eq!(f.poll(&mut cx), 1);
        assert!(f.is_empty());
    }
}
