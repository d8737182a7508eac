//! The push worker pool: a fixed set of threads taking tasks from one queue. Outbound HTTP is
//! blocking (ureq), so it runs here and never on a tokio worker.
//!
//! The queue is a mutex-guarded deque with a condition variable, not a channel: an idle worker
//! sleeps on the condition variable at once. (With crossbeam's channel each of the many idle
//! workers spun and called `sched_yield` before sleeping, every time a task woke one of them:
//! a tenth of the server's CPU at 2,000 pushes/s.)

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Task = Box<dyn FnOnce() + Send>;

pub struct WorkerPool {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

/// Shared by the pool (which pushes and closes) and its threads (which take).
struct Queue {
    state: Mutex<State>,
    /// Signalled by `push` (one worker) and by `shutdown` (all of them); workers wait on it.
    ready: Condvar,
}

struct State {
    tasks: VecDeque<Task>,
    /// Cleared by `shutdown`: no more tasks are taken in, the queued ones still run.
    open: bool,
}

impl WorkerPool {
    /// Starts `n` threads (at least one).
    pub fn new(n: usize) -> std::io::Result<WorkerPool> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                open: true,
            }),
            ready: Condvar::new(),
        });
        let threads = (0..n.max(1))
            .map(|i| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("axme-push-{i}"))
                    .spawn(move || {
                        while let Some(task) = queue.take() {
                            task();
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(WorkerPool { queue, threads })
    }

    /// Queues a task; `false` if the pool is shut down.
    pub fn push(&self, task: impl FnOnce() + Send + 'static) -> bool {
        let Ok(mut state) = self.queue.state.lock() else {
            return false;
        };
        if !state.open {
            return false;
        }
        state.tasks.push_back(Box::new(task));
        drop(state);
        self.queue.ready.notify_one();
        true
    }

    /// Stops taking tasks and waits for the threads to finish what is queued.
    pub fn shutdown(&mut self) {
        if let Ok(mut state) = self.queue.state.lock() {
            state.open = false;
        }
        self.queue.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Queue {
    /// The next task, waiting for one; `None` once the pool is shut down and the queue empty.
    fn take(&self) -> Option<Task> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(task) = state.tasks.pop_front() {
                return Some(task);
            }
            if !state.open {
                return None;
            }
            state = self.ready.wait(state).ok()?;
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_task_before_shutdown_returns() {
        let mut pool = WorkerPool::new(3).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let d = done.clone();
            assert!(pool.push(move || {
                d.fetch_add(1, Ordering::SeqCst);
            }));
        }
        pool.shutdown();
        assert_eq!(done.load(Ordering::SeqCst), 100);
        assert!(!pool.push(|| {}));
    }

    #[test]
    fn tasks_run_on_as_many_threads_at_once_as_the_pool_has() {
        // Each task waits until all four are running: this only finishes if four threads take
        // tasks at the same time.
        let mut pool = WorkerPool::new(4).unwrap();
        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        for _ in 0..4 {
            let started = started.clone();
            assert!(pool.push(move || {
                let (count, cv) = &*started;
                let mut n = count.lock().unwrap();
                *n += 1;
                cv.notify_all();
                while *n < 4 {
                    n = cv.wait(n).unwrap();
                }
            }));
        }
        pool.shutdown();
        assert_eq!(*started.0.lock().unwrap(), 4);
    }
}
