//! A bounded queue that drops its oldest entry when full: the newest events matter most to
//! a receiver that comes back after an outage.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Drop-oldest FIFO shared by a webhook's collector (pushes) and sender (pops).
#[derive(Debug)]
pub(crate) struct DropOldest<T> {
    /// The entries, oldest first, at most `cap`.
    items: Mutex<VecDeque<T>>,
    /// Most entries held.
    cap: usize,
    /// Wakes the sender when an entry arrives.
    ready: Notify,
}

impl<T> DropOldest<T> {
    /// An empty queue of at most `cap` (at least 1) entries.
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        DropOldest {
            items: Mutex::new(VecDeque::with_capacity(cap)),
            cap,
            ready: Notify::new(),
        }
    }

    /// Appends `item`; returns the oldest entry when it had to make room.
    pub(crate) fn push(&self, item: T) -> Option<T> {
        let dropped = {
            let mut q = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = if q.len() >= self.cap {
                q.pop_front()
            } else {
                None
            };
            q.push_back(item);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// Entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The oldest entry, waiting for one when empty.
    pub(crate) async fn pop(&self) -> T {
        loop {
            let notified = self.ready.notified();
            if let Some(item) = self
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return item;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_drops_the_oldest() {
        let q = DropOldest::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().await, 2);
        assert_eq!(q.pop().await, 3);
    }
}
