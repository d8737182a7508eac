//! The push worker pool: a fixed set of threads taking tasks from a crossbeam channel. Outbound
//! HTTP is blocking (ureq), so it runs here and never on a tokio worker.

use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};

type Task = Box<dyn FnOnce() + Send>;

pub struct WorkerPool {
    /// Tasks to the threads; dropping it (in `shutdown`) lets every thread finish its current
    /// task and exit.
    sender: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `n` threads (at least one).
    pub fn new(n: usize) -> std::io::Result<WorkerPool> {
        let (sender, receiver) = unbounded::<Task>();
        let threads = (0..n.max(1))
            .map(|i| {
                let rx = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("axme-push-{i}"))
                    .spawn(move || {
                        for task in rx {
                            task();
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(WorkerPool {
            sender: Some(sender),
            threads,
        })
    }

    /// Queues a task; `false` if the pool is shut down.
    pub fn push(&self, task: impl FnOnce() + Send + 'static) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|s| s.send(Box::new(task)).is_ok())
    }

    /// Stops taking tasks and waits for the threads to finish what they have.
    pub fn shutdown(&mut self) {
        self.sender.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
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
    use std::sync::Arc;

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
}
