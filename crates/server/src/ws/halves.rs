//! Runs a session's two halves in one task, polling each only when it was woken.
//!
//! `tokio::join!` polls every unfinished branch whenever the task wakes. For a
//! session that is costly exactly where it matters: every notification wakes the
//! task to write, and each wake would also poll the reader's wait on its socket,
//! shutdown, ping timer and token expiry. With 10,000 subscribers of one key that is
//! 10,000 needless reader polls per change. Here each half gets its own waker, which
//! records that it fired and wakes the task; a poll of the pair polls only the halves
//! whose waker fired. Two small allocations per connection, made once.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// One half's waker: notes that it fired, then wakes the task running both.
#[derive(Debug, Default)]
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// One half, its waker, and whether it has finished.
struct Half {
    flag: Arc<Flag>,
    waker: Waker,
    done: bool,
}

impl Half {
    fn new() -> Self {
        let flag = Arc::new(Flag {
            // Both halves are polled on the first poll.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Half {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            done: false,
        }
    }

    /// Polls `future` if this half was woken since its last poll.
    fn poll(&mut self, task: &Waker, future: std::pin::Pin<&mut impl Future<Output = ()>>) {
        // Registered before the flag is read: a wake in between is not lost.
        self.flag.task.register(task);
        if self.done || !self.flag.woken.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut cx = Context::from_waker(&self.waker);
        self.done = future.poll(&mut cx).is_ready();
    }
}

/// Runs `a` and `b` to completion together, each polled only when its own waker fired.
pub(super) async fn join_separately(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let (mut first, mut second) = (Half::new(), Half::new());
    std::future::poll_fn(|cx| {
        first.poll(cx.waker(), a.as_mut());
        second.poll(cx.waker(), b.as_mut());
        if first.done && second.done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    /// A future that counts its polls and finishes after `needed` notifications.
    async fn counted(polls: &AtomicUsize, notify: &Notify, needed: usize) {
        for _ in 0..needed {
            let notified = notify.notified();
            polls.fetch_add(1, Ordering::Relaxed);
            notified.await;
        }
    }

    #[tokio::test]
    async fn a_wake_of_one_half_does_not_poll_the_other() {
        let (a_polls, b_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (a_wake, b_wake) = (Notify::new(), Notify::new());
        let a_turns = AtomicUsize::new(0);
        let joined = join_separately(
            async {
                // Wrapped so each poll of the half is counted, not only its loop turns.
                let mut inner = pin!(counted(&a_turns, &a_wake, 1));
                std::future::poll_fn(|cx| {
                    a_polls.fetch_add(1, Ordering::Relaxed);
                    inner.as_mut().poll(cx)
                })
                .await
            },
            counted(&b_polls, &b_wake, 100),
        );
        let driver = async {
            for _ in 0..100 {
                b_wake.notify_one();
                tokio::task::yield_now().await;
            }
            a_wake.notify_one();
        };
        tokio::join!(joined, driver);
        assert_eq!(b_polls.load(Ordering::Relaxed), 100);
        // Polled once to start and once when its own notification came.
        assert_eq!(a_polls.load(Ordering::Relaxed), 2);
    }
}
