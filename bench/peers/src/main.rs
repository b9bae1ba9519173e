//! Peers side by side (issue 21, goal 5): the same claim → complete loop through our store's
//! queue functions and through a well-known Rust PostgreSQL job queue (`underway`), in-process,
//! in the same sitting, each side on a fresh database of the local PostgreSQL.
//!
//! Usage: `hotpatch-peers-bench [--jobs N] [--workers C] [--batch B] [--batch-workers W] SIDE...`
//! with SIDE one of `ours`, `ours-batch`, `underway` (run in the order given). Prints
//! `name value unit` lines, like `../shared/limits/run_limits.sh`. The server is `PGURL`
//! (default `postgres://postgres@127.0.0.1:5432`); each side creates and drops its own database.

mod ours;
mod peer;

use std::time::Duration;

use anyhow::{bail, Context as _};
use hotpatch_store::PgPool;
use sqlx::{Connection as _, PgConnection};

/// What to run, from the command line.
struct Args {
    jobs: usize,
    workers: usize,
    batch: usize,
    batch_workers: usize,
    pgurl: String,
    sides: Vec<String>,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            jobs: 20_000,
            workers: 8,
            // The service's shape at 64 agents: two batch runners per kind of request
            // (`BATCH_RUNNERS` in crates/app/src/queue/batches.rs), so about 32 requests a batch.
            batch: 32,
            batch_workers: 2,
            pgurl: std::env::var("PGURL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
            sides: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut number = |name: &str| -> anyhow::Result<usize> {
                let v = it.next().with_context(|| format!("{name} needs a value"))?;
                let n: usize = v.parse().with_context(|| format!("{name} {v}"))?;
                if n == 0 {
                    bail!("{name} must be at least 1");
                }
                Ok(n)
            };
            match arg.as_str() {
                "--jobs" => args.jobs = number("--jobs")?,
                "--workers" => args.workers = number("--workers")?,
                "--batch" => args.batch = number("--batch")?,
                "--batch-workers" => args.batch_workers = number("--batch-workers")?,
                "ours" | "ours-batch" | "underway" => args.sides.push(arg),
                other => bail!("unknown argument {other:?} (sides: ours, ours-batch, underway)"),
            }
        }
        if args.sides.is_empty() {
            args.sides = vec!["ours".into(), "ours-batch".into(), "underway".into()];
        }
        Ok(args)
    }
}

/// A figure to print as `name value unit`.
pub struct Figure(pub String, pub f64, pub &'static str);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    for side in &args.sides {
        let db = ScratchDb::create(&args.pgurl, side).await?;
        // Room for every worker's connection and the peer's second one per task (its dequeue
        // and its execute transaction) and heartbeat: the same pool size for every side.
        let pool =
            hotpatch_store::connect_with(&db.url, (2 * args.workers.max(args.batch_workers) + 2) as u32)
                .await
                .context("connecting")?;
        // The same durability as the reference line (`synchronous_commit=on`) for every side.
        let sync: String = sqlx::query_scalar("show synchronous_commit").fetch_one(&pool).await?;
        if sync != "on" {
            bail!("synchronous_commit is {sync} on this server: the comparison needs it on");
        }
        let figures = run_side(&args, side, &pool).await;
        pool.close().await;
        db.drop().await?;
        print_figures(figures?);
    }
    Ok(())
}

/// The figures on stdout, the one place this binary prints its results.
#[allow(clippy::print_stdout)]
fn print_figures(figures: Vec<Figure>) {
    for Figure(name, value, unit) in figures {
        let value = if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.3}") };
        println!("{name} {value} {unit}");
    }
}

async fn run_side(args: &Args, side: &str, pool: &PgPool) -> anyhow::Result<Vec<Figure>> {
    let (n, c) = (args.jobs, args.workers);
    match side {
        "ours" => {
            let (machines, enqueue) = ours::prepare(pool, n).await?;
            settle(pool).await?;
            let elapsed = ours::one_by_one(pool, machines, c).await?;
            ours::check_all_done(pool, n).await?;
            Ok(vec![
                Figure("peers_ours_enqueue".into(), enqueue.as_secs_f64(), "s"),
                Figure(format!("peers_ours_claim_complete_c{c}"), per_second(n, elapsed), "jobs/s"),
            ])
        }
        "ours-batch" => {
            let (b, w) = (args.batch, args.batch_workers);
            let (machines, _) = ours::prepare(pool, n).await?;
            settle(pool).await?;
            let elapsed = ours::batched(pool, machines, w, b).await?;
            ours::check_all_done(pool, n).await?;
            Ok(vec![Figure(
                format!("peers_ours_batch{b}_claim_complete_c{w}"),
                per_second(n, elapsed),
                "jobs/s",
            )])
        }
        "underway" => {
            let (queue, enqueue) = peer::prepare(pool, n).await?;
            settle(pool).await?;
            let elapsed = peer::drain(queue, c).await?;
            peer::check_all_done(pool, n).await?;
            Ok(vec![
                Figure("peers_underway_enqueue".into(), enqueue.as_secs_f64(), "s"),
                Figure(format!("peers_underway_claim_complete_c{c}"), per_second(n, elapsed), "jobs/s"),
            ])
        }
        other => bail!("unknown side {other}"),
    }
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Before the timed loop of every side: statistics for the freshly filled tables (as autovacuum
/// would have them a minute later) and a checkpoint, so neither side pays for writing out the
/// other's or its own bulk insert.
async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("analyze").execute(pool).await?;
    sqlx::query("checkpoint").execute(pool).await?;
    Ok(())
}

/// A database of its own for one side, dropped afterwards.
struct ScratchDb {
    maintenance: String,
    name: String,
    url: String,
}

impl ScratchDb {
    async fn create(pgurl: &str, side: &str) -> anyhow::Result<ScratchDb> {
        let pgurl = pgurl.trim_end_matches('/');
        let name = format!("peers_{}_{}", side.replace('-', "_"), std::process::id());
        let db = ScratchDb { maintenance: format!("{pgurl}/postgres"), url: format!("{pgurl}/{name}"), name };
        let mut conn = PgConnection::connect(&db.maintenance).await.context("connecting to PostgreSQL")?;
        sqlx::query(&format!(r#"drop database if exists "{}" with (force)"#, db.name))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!(r#"create database "{}""#, db.name)).execute(&mut conn).await?;
        conn.close().await?;
        Ok(db)
    }

    async fn drop(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.maintenance).await?;
        sqlx::query(&format!(r#"drop database if exists "{}" with (force)"#, self.name))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }
}
