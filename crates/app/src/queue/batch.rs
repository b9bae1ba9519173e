//! Requests of many clients answered together: while a batch is at the database, the requests
//! that arrive wait in a queue and go as the next batch, one statement for all of them.
//!
//! Nothing waits on a timer: a request that finds a runner free is sent at once (a batch of one),
//! so a quiet server answers as fast as before; under load, batches grow with the queue and the
//! database does one round trip and one commit per batch instead of one per request. This is
//! group commit done one level up, for the agent protocol's claims, heartbeats and results (see
//! `super::batches`), where thousands of agents call at once when a fleet is assessed or a
//! rollout wave opens.
//!
//! Runners are spawned tasks, so a client that goes away while its request is in a batch cancels
//! nothing: the batch runs to its end for everyone else in it.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt as _;
use tokio::sync::oneshot;

/// A queue of requests and the runners that take them in batches.
#[derive(Debug)]
pub struct Batcher<Req, Resp> {
    queue: Mutex<Queue<Req, Resp>>,
    /// Runners at most at once: batches in flight, each on its own connection.
    max_runners: usize,
    /// Requests at most in one batch (one statement's arrays).
    max_batch: usize,
    /// Batches run and the requests they carried, for `/metrics`.
    batches: AtomicU64,
    requests: AtomicU64,
}

#[derive(Debug)]
struct Queue<Req, Resp> {
    waiting: VecDeque<(Req, oneshot::Sender<Resp>)>,
    runners: usize,
}

/// The batch a request was in failed without an answer for it (its runner panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch this request was in did not complete")]
pub struct Dropped;

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// A batcher with at most `max_runners` batches in flight of at most `max_batch` requests.
    pub fn new(max_runners: usize, max_batch: usize) -> Self {
        assert!(max_runners > 0 && max_batch > 0, "a batcher needs a runner and room for a request");
        Batcher {
            queue: Mutex::new(Queue { waiting: VecDeque::new(), runners: 0 }),
            max_runners,
            max_batch,
            batches: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// Batches run so far and the requests they carried (their ratio is the mean batch size).
    pub fn counts(&self) -> (u64, u64) {
        (self.batches.load(Ordering::Relaxed), self.requests.load(Ordering::Relaxed))
    }

    /// Sends `request` in the next batch and waits for its answer. `run` answers a batch, one
    /// answer per request in the same order; it is used by the runner this call starts, if any
    /// (otherwise a running one takes the request with its own `run`).
    pub async fn submit<F, Fut>(self: &Arc<Self>, request: Req, run: F) -> Result<Resp, Dropped>
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back((request, tx));
            let start = queue.runners < self.max_runners;
            if start {
                queue.runners += 1;
            }
            start
        };
        if start {
            tokio::spawn(self.clone().drain(run));
        }
        rx.await.map_err(|_| Dropped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<Req, Resp>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs batches until the queue is empty, then leaves (the next request starts a runner).
    async fn drain<F, Fut>(self: Arc<Self>, run: F)
    where
        F: Fn(Vec<Req>) -> Fut,
        Fut: Future<Output = Vec<Resp>>,
    {
        loop {
            let batch: Vec<(Req, oneshot::Sender<Resp>)> = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    // Decided under the lock that queued the last request: a request queued after
                    // this sees one runner fewer and starts its own.
                    queue.runners -= 1;
                    return;
                }
                let n = queue.waiting.len().min(self.max_batch);
                queue.waiting.drain(..n).collect()
            };
            let (requests, senders): (Vec<Req>, Vec<oneshot::Sender<Resp>>) = batch.into_iter().unzip();
            let expected = senders.len();
            self.batches.fetch_add(1, Ordering::Relaxed);
            self.requests.fetch_add(expected as u64, Ordering::Relaxed);
            // A panic answers this batch with `Dropped` (its senders are dropped) and the runner
            // goes on with the next one, so one bad batch never strands the queue.
            match AssertUnwindSafe(run(requests)).catch_unwind().await {
                Ok(answers) => {
                    debug_assert_eq!(answers.len(), expected, "one answer per request");
                    for (tx, answer) in senders.into_iter().zip(answers) {
                        // The client went away: its answer has no one to go to.
                        let _ = tx.send(answer);
                    }
                }
                Err(_) => tracing::error!(requests = expected, "a batch panicked; its requests get an error"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Doubles each number after a pause, recording each batch's size.
    fn doubler(
        sizes: Arc<Mutex<Vec<usize>>>,
    ) -> impl Fn(Vec<u32>) -> futures::future::BoxFuture<'static, Vec<u32>> {
        move |batch: Vec<u32>| {
            let sizes = sizes.clone();
            async move {
                sizes.lock().unwrap().push(batch.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
                batch.into_iter().map(|n| n * 2).collect()
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_lone_request_goes_at_once_as_a_batch_of_one() {
        let batcher = Arc::new(Batcher::new(2, 100));
        let sizes = Arc::new(Mutex::new(vec![]));
        assert_eq!(batcher.submit(21, doubler(sizes.clone())).await, Ok(42));
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn requests_arriving_while_the_runners_are_busy_go_together_and_each_gets_its_own_answer() {
        let batcher = Arc::new(Batcher::new(1, 100));
        let sizes = Arc::new(Mutex::new(vec![]));
        let calls: Vec<_> = (0..50u32)
            .map(|n| {
                let (batcher, sizes) = (batcher.clone(), sizes.clone());
                tokio::spawn(async move { (n, batcher.submit(n, doubler(sizes)).await) })
            })
            .collect();
        for call in calls {
            let (n, answer) = call.await.unwrap();
            assert_eq!(answer, Ok(n * 2));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 50, "every request in exactly one batch");
        assert!(sizes.len() < 50, "requests that waited went together: {sizes:?}");
        assert_eq!(batcher.counts(), (sizes.len() as u64, 50));
    }

    #[tokio::test]
    async fn batches_hold_at_most_max_batch_and_runners_stay_within_max_runners() {
        let batcher = Arc::new(Batcher::new(3, 4));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let sizes = Arc::new(Mutex::new(vec![]));
        let run = {
            let (running, most, sizes) = (running.clone(), most.clone(), sizes.clone());
            move |batch: Vec<u32>| {
                let (running, most, sizes) = (running.clone(), most.clone(), sizes.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    sizes.lock().unwrap().push(batch.len());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    batch
                }
            }
        };
        let calls: Vec<_> = (0..100u32)
            .map(|n| {
                let (batcher, run) = (batcher.clone(), run.clone());
                tokio::spawn(async move { batcher.submit(n, run).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(n as u32));
        }
        assert!(sizes.lock().unwrap().iter().all(|&s| (1..=4).contains(&s)));
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_only_its_own_requests_and_the_queue_goes_on() {
        let batcher = Arc::new(Batcher::new(1, 100));
        let run = |batch: Vec<u32>| async move {
            assert!(!batch.contains(&13), "unlucky");
            batch
        };
        assert_eq!(batcher.submit(13, run).await, Err(Dropped));
        assert_eq!(batcher.submit(7, run).await, Ok(7));
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_batch_for_the_others() {
        let batcher = Arc::new(Batcher::new(1, 100));
        let done = Arc::new(AtomicUsize::new(0));
        let run = {
            let done = done.clone();
            move |batch: Vec<u32>| {
                let done = done.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    done.fetch_add(batch.len(), Ordering::SeqCst);
                    batch
                }
            }
        };
        // The first caller gives up while its batch runs; a second one queued behind it is answered.
        let first = tokio::time::timeout(Duration::from_millis(5), batcher.submit(1, run.clone())).await;
        assert!(first.is_err());
        assert_eq!(batcher.submit(2, run).await, Ok(2));
        assert_eq!(done.load(Ordering::SeqCst), 2, "the abandoned request's batch still ran");
    }
}
