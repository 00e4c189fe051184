//! A one-slot mailbox in which a new frame replaces an unread one. Between a camera and a
//! slower model this keeps latency flat: the model always gets the newest frame, and the
//! frames it could not look at are counted, not queued.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Debug)]
struct Slot<T> {
    item: Option<T>,
    closed: bool,
}

#[derive(Debug)]
pub struct Mailbox<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
    taken: Condvar,
}

/// What [`Mailbox::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Take<T> {
    Item(T),
    Timeout,
    /// Closed and empty: nothing more will come.
    Closed,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(Slot {
                item: None,
                closed: false,
            }),
            ready: Condvar::new(),
            taken: Condvar::new(),
        }
    }
}

impl<T> Mailbox<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A panic while holding this lock cannot leave the slot half-written.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves `item` for the reader; returns the unread item it replaced, if any.
    pub fn put(&self, item: T) -> Option<T> {
        let replaced = self.lock().item.replace(item);
        self.ready.notify_one();
        replaced
    }

    /// Leaves `item` once the reader has taken the previous one, for sources where every
    /// frame is a part that must be judged. Gives the item back if the slot stays full.
    pub fn put_when_empty(&self, item: T, timeout: Duration) -> Result<(), T> {
        let guard = self.lock();
        let (mut guard, _) = self
            .taken
            .wait_timeout_while(guard, timeout, |s| s.item.is_some())
            .unwrap_or_else(PoisonError::into_inner);
        if guard.item.is_some() {
            return Err(item);
        }
        guard.item = Some(item);
        self.ready.notify_one();
        Ok(())
    }

    pub fn take(&self, timeout: Duration) -> Take<T> {
        let guard = self.lock();
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |s| s.item.is_none() && !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        match guard.item.take() {
            Some(item) => {
                self.taken.notify_one();
                Take::Item(item)
            }
            None if guard.closed => Take::Closed,
            None => Take::Timeout,
        }
    }

    /// No more items will be put; the reader gets what is left, then `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn newest_item_wins() {
        let m = Mailbox::default();
        assert_eq!(m.put(1), None);
        assert_eq!(m.put(2), Some(1));
        assert_eq!(m.take(Duration::ZERO), Take::Item(2));
        assert_eq!(m.take(Duration::from_millis(5)), Take::Timeout);
    }

    #[test]
    fn put_when_empty_waits_for_the_reader() {
        let m = Arc::new(Mailbox::default());
        m.put(1);
        assert_eq!(m.put_when_empty(2, Duration::from_millis(5)), Err(2));
        let reader = Arc::clone(&m);
        let handle = std::thread::Builder::new()
            .name("test-reader".into())
            .spawn(move || reader.take(Duration::from_secs(10)))
            .expect("a test thread");
        assert_eq!(m.put_when_empty(3, Duration::from_secs(10)), Ok(()));
        assert_eq!(handle.join().ok(), Some(Take::Item(1)));
        assert_eq!(m.take(Duration::ZERO), Take::Item(3));
    }

    #[test]
    fn close_drains_then_reports_closed() {
        let m = Mailbox::default();
        m.put(7);
        m.close();
        assert_eq!(m.take(Duration::ZERO), Take::Item(7));
        assert_eq!(m.take(Duration::from_secs(5)), Take::Closed);
    }

    #[test]
    fn take_wakes_when_an_item_arrives() {
        let m = Arc::new(Mailbox::default());
        let writer = Arc::clone(&m);
        let handle = std::thread::Builder::new()
            .name("test-writer".into())
            .spawn(move || writer.put("frame"))
            .expect("a test thread");
        assert_eq!(m.take(Duration::from_secs(10)), Take::Item("frame"));
        assert_eq!(handle.join().ok(), Some(None));
    }
}
