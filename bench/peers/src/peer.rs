//! The peer: `underway` 0.2, a published PostgreSQL task queue on sqlx 0.8 with `for update skip
//! locked` claims, heartbeats and retries — the same kind of queue as ours.
//!
//! Its loop is driven through its own public worker step, `Worker::process_next_task`, with a
//! no-op task: it claims the next pending task (`Queue::dequeue`: the skip-locked update plus its
//! attempt row, in a transaction of its own), then runs the task in a second transaction that
//! takes the task's advisory lock, marks it succeeded and commits. `Worker::run` calls exactly
//! that step in a loop on each of its `concurrency_limit` permits; it is not used itself because
//! it starts those loops only on a `task_change` notification or its polling tick (one loop per
//! event), so on a queue filled beforehand it would not reach C loops at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use hotpatch_store::PgPool;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use underway::{Queue, Task, Worker};
use uuid::Uuid;

/// The queue's name.
const QUEUE: &str = "peers";

/// A task that does nothing: only the queue's own cost is measured.
#[derive(Debug, Clone, Copy)]
pub struct Noop;

/// A task's input: which machine it is for (our job's row carries the machine too).
#[derive(Debug, Serialize, Deserialize)]
pub struct Input {
    machine_id: Uuid,
}

impl Task for Noop {
    type Input = Input;
    type Output = ();

    async fn execute(&self, _tx: Transaction<'_, Postgres>, _input: Input) -> underway::task::Result<()> {
        Ok(())
    }
}

/// Migrates underway's schema, creates the queue and enqueues `n` tasks with its bulk
/// `enqueue_multi`. Returns the queue and how long the enqueue took.
pub async fn prepare(pool: &PgPool, n: usize) -> anyhow::Result<(Queue<Noop>, Duration)> {
    underway::run_migrations(pool).await?;
    let queue = Queue::builder().name(QUEUE).pool(pool.clone()).build().await?;
    let inputs: Vec<Input> = (0..n).map(|_| Input { machine_id: Uuid::now_v7() }).collect();
    let started = Instant::now();
    let queued = queue.enqueue_multi(pool, &Noop, &inputs).await?;
    let enqueue = started.elapsed();
    ensure!(queued == n, "{queued} of {n} tasks queued");
    Ok((queue, enqueue))
}

/// `workers` concurrent loops of `process_next_task` until the queue is empty. Returns the wall
/// time until every task is done.
pub async fn drain(queue: Queue<Noop>, workers: usize) -> anyhow::Result<Duration> {
    let worker = Worker::new(Arc::new(queue), Noop);
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let worker = worker.clone();
            tokio::spawn(async move {
                // `None`: nothing pending any more (claims skip only the tasks other loops hold).
                while worker.process_next_task().await?.is_some() {}
                Ok::<(), anyhow::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Every one of the `n` tasks ended `succeeded`.
pub async fn check_all_done(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    let done: i64 = sqlx::query_scalar("select count(*) from underway.task where state = 'succeeded'")
        .fetch_one(pool)
        .await?;
    ensure!(done as usize == n, "{done} of {n} tasks succeeded");
    Ok(())
}
