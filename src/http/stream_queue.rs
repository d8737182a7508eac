//! The queue between a stream's producer task and its response body, bounded in bytes (and in
//! chunks).
//!
//! A stream's memory must not grow with a reader that stops reading: the producer waits for room
//! at most its write deadline, then cuts the stream off. Cutting drops what is queued at once and
//! asks the connection's task to close the socket, so nothing of the stream stays pinned while a
//! client keeps a connection open and never reads. The queue never holds more than its byte
//! budget, except for one chunk larger than the budget, which may go into an empty queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::{timeout_at, Instant};

use super::connections::Hangup;

/// Why a chunk was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The body is gone (the client left) or the stream was cut off.
    Closed,
    /// No room came within the deadline: the stream is cut off now.
    CutOff,
}

struct State {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    sender_gone: bool,
    receiver_gone: bool,
    cut: bool,
    /// The body's task, woken when a chunk arrives or the stream ends.
    waker: Option<Waker>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the producer when the body took a chunk or went away.
    room: Notify,
    budget_bytes: usize,
    max_chunks: usize,
    hangup: Option<Hangup>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producer's end.
pub struct Sender(Arc<Shared>);

/// The response body's end.
pub struct Receiver(Arc<Shared>);

/// A queue of at most `budget_bytes` (and `max_chunks` chunks); `hangup` closes the connection
/// when the stream is cut off.
pub fn channel(
    budget_bytes: usize,
    max_chunks: usize,
    hangup: Option<Hangup>,
) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            chunks: VecDeque::new(),
            bytes: 0,
            sender_gone: false,
            receiver_gone: false,
            cut: false,
            waker: None,
        }),
        room: Notify::new(),
        budget_bytes: budget_bytes.max(1),
        max_chunks: max_chunks.max(1),
        hangup,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues `chunk`, waiting at most `deadline` for room; past it, cuts the stream off.
    pub async fn send(&self, chunk: Bytes, deadline: Duration) -> Result<(), Refused> {
        let give_up = Instant::now() + deadline;
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut s = self.0.lock();
                if s.receiver_gone || s.cut {
                    return Err(Refused::Closed);
                }
                let fits = s.bytes + chunk.len() <= self.0.budget_bytes
                    && s.chunks.len() < self.0.max_chunks;
                if s.chunks.is_empty() || fits {
                    s.bytes += chunk.len();
                    s.chunks.push_back(chunk);
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                    return Ok(());
                }
            }
            if timeout_at(give_up, room).await.is_err() {
                self.cut();
                return Err(Refused::CutOff);
            }
        }
    }

    /// Resolves when the body is gone (the client left).
    pub async fn closed(&self) {
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.0.lock().receiver_gone {
                return;
            }
            room.await;
        }
    }

    /// Drops everything queued, ends the body and asks for the connection to be closed.
    pub fn cut(&self) {
        let waker = {
            let mut s = self.0.lock();
            s.cut = true;
            s.chunks.clear();
            s.bytes = 0;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(h) = &self.0.hangup {
            h.hang_up();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Receiver {
    /// The next chunk; `None` once the producer finished (after everything it queued) or the
    /// stream was cut off.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut s = self.0.lock();
        if let Some(chunk) = s.chunks.pop_front() {
            s.bytes -= chunk.len();
            drop(s);
            self.0.room.notify_waiters();
            return Poll::Ready(Some(chunk));
        }
        if s.sender_gone || s.cut {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.0.lock().bytes
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.receiver_gone = true;
            s.chunks.clear();
            s.bytes = 0;
        }
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn the_queue_holds_its_byte_budget_then_cuts_off_and_frees_it() {
        let hangup = Hangup::default();
        let (tx, mut rx) = channel(10, 100, Some(hangup.clone()));
        let chunk = || Bytes::from_static(b"12345");
        let short = Duration::from_millis(20);
        assert_eq!(tx.send(chunk(), short).await, Ok(()));
        assert_eq!(tx.send(chunk(), short).await, Ok(()));
        assert_eq!(rx.queued_bytes(), 10);
        // Full: the third waits out its deadline, and the stream is cut.
        assert_eq!(tx.send(chunk(), short).await, Err(Refused::CutOff));
        assert_eq!(rx.queued_bytes(), 0, "cutting off frees what was queued");
        assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, None);
        // The connection was asked to close.
        tokio::time::timeout(short, hangup.requested())
            .await
            .expect("hang-up requested");
        assert_eq!(tx.send(chunk(), short).await, Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_budget_goes_into_an_empty_queue_and_room_wakes_the_sender() {
        let (tx, mut rx) = channel(4, 100, None);
        let long = Duration::from_secs(5);
        tx.send(Bytes::from_static(b"too large"), long)
            .await
            .expect("an empty queue takes one oversized chunk");
        let tx = Arc::new(tx);
        let sender = tx.clone();
        let waiting =
            tokio::spawn(async move { sender.send(Bytes::from_static(b"ab"), long).await });
        tokio::task::yield_now().await;
        assert_eq!(
            poll_fn(|cx| rx.poll_recv(cx)).await.as_deref(),
            Some(&b"too large"[..])
        );
        assert_eq!(waiting.await.expect("task"), Ok(()));
        assert_eq!(rx.queued_bytes(), 2);
        drop(rx);
        tokio::time::timeout(long, tx.closed())
            .await
            .expect("the sender sees the body go");
    }
}
