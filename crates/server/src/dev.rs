//! `hotpatchd dev`: the whole product in one command, for a first look and for demos. It starts
//! the service as a normal start does (the embedded PostgreSQL, under its own data directory),
//! with a clock that runs `--speed` times faster than real time (an hour a second by default),
//! publishes the sample catalog's releases as the clock passes their release dates, and runs a
//! simulated fleet whose agents live in this process but talk HTTP to the service like any agent.
//! Rollouts start the way they do in production (publishing a current release starts its
//! automatic rollout) and go through the machines' real maintenance windows; the dispatcher,
//! the queue and the agents take no shortcut. A line every few seconds says where they are.
//!
//! The service measures leases and agent silence on its clock, so at `--speed` those would
//! shrink by as much: dev stretches them by the speed to keep their real-time length.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_agent::{AgentConfig, Fleet, FleetConfig, SimConfig};
use hotpatch_app::clock::Clock;
use hotpatch_app::App;
use hotpatch_domain::release::{ReleaseSpec, UpdateSpec};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::startup::{Application, StartupError};
use crate::Config;

/// The sample catalog (invented KBs and builds) the demo publishes.
const SAMPLE: &str = include_str!("../../../deploy/catalog/sample.json");
/// The file marking a directory as a dev data directory (`--reset` deletes only those).
const MARKER: &str = "hotpatchd-dev";
/// Where the clock stood when the demo last saved it: a restart goes on from there.
const CLOCK_FILE: &str = "dev-clock";
/// Regions of the simulated fleet: a canary region and geo-paired ones, so rollouts have waves.
const REGIONS: [&str; 5] = ["uksouth", "northeurope", "eastus", "westus", "eastasia"];

/// `hotpatchd dev`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// How many times faster than real time the service clock runs (1–86400; 14400: four hours
    /// a second, a day in 6 s, a batch of a rollout about every 6 s).
    #[arg(long, default_value_t = 14_400.0, value_parser = parse_speed)]
    pub speed: f64,
    /// The largest batch of machines outside availability sets in the demo's automatic
    /// rollouts, in percent (1–100): the service's `--automatic-max-batch-percent`. Higher than
    /// the service's default 20 so that a wave takes days of the clock, not weeks.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub batch_percent: u32,
    /// Simulated machines (1–5000).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub machines: u32,
    /// The demo's data directory (its own: never the service's `.hotpatch`).
    #[arg(long, default_value = ".hotpatch-dev")]
    pub data_dir: PathBuf,
    /// Start from nothing: delete the demo's data directory first.
    #[arg(long)]
    pub reset: bool,
    /// Where the clock starts in a new data directory (a day before the sample's October 2025
    /// baseline comes out).
    #[arg(long, default_value = "2025-10-13T12:00:00Z", value_parser = parse_instant)]
    pub start: DateTime<Utc>,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a speed between 1 and 86400")),
    }
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    hotpatch_domain::time::parse_instant(s)
        .ok_or_else(|| format!("'{s}' is not an RFC 3339 instant or a date, e.g. 2025-10-13T12:00:00Z"))
}

/// The sample catalog's file.
#[derive(Deserialize)]
struct Sample {
    releases: Vec<ReleaseSpec>,
    updates: Vec<UpdateSpec>,
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(mut config: Config, args: DevArgs) -> Result<(), StartupError> {
    prepare_dir(&args.data_dir, args.reset)?;
    if config.database_url().is_some() {
        warn!("dev runs its own embedded PostgreSQL: DATABASE_URL is ignored");
    }
    config.database_url = None;
    config.data_dir = args.data_dir.clone();
    config.clock_control = false;
    config.automatic_rollouts = true;
    config.automatic_max_batch_percent = args.batch_percent;
    // A pass every 100 ms of real time is 6 minutes of the clock at 3600x: every window (hours)
    // sees many passes, as it does at real speed.
    config.dispatch_interval_ms = config.dispatch_interval_ms.min(100);
    let token_file = args.data_dir.join("admin-token");
    if config.admin_token().is_none() {
        config.admin_token = std::fs::read_to_string(&token_file).ok().map(|t| t.trim().to_owned());
    }
    let start = saved_clock(&args.data_dir).unwrap_or(args.start);
    // Still until the fleet is up (see `drive`): nothing comes out before there are machines.
    let clock = Clock::manual(start);
    let application =
        Application::build_with(config.clone(), stretched(&config, args.speed), Some(clock)).await?;
    let token = match config.admin_token() {
        Some(t) => t.to_owned(),
        None => std::fs::read_to_string(&token_file)
            .map(|t| t.trim().to_owned())
            .map_err(|source| StartupError::DataDir { dir: token_file.clone(), source })?,
    };
    let url = format!("http://{}", application.local_addr());
    banner(&url, &token_file, &args, start);
    let app = application.state().app.clone();
    let shutdown = application.shutdown_token();
    let demo = tokio::spawn(drive(app, url, token, args, shutdown.clone()));
    let served = application.run().await;
    shutdown.cancel();
    let _ = demo.await;
    served
}

/// Creates the data directory (deleting it first with `reset`, when it is a dev one) and marks it.
fn prepare_dir(dir: &Path, reset: bool) -> Result<(), StartupError> {
    let io = |source| StartupError::DataDir { dir: dir.to_owned(), source };
    let is_dev = dir.join(MARKER).exists();
    let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true);
    if !is_dev && !empty {
        return Err(io(std::io::Error::other(
            "not a hotpatchd dev data directory (no hotpatchd-dev file in it): give dev its own --data-dir",
        )));
    }
    if reset && is_dev {
        std::fs::remove_dir_all(dir).map_err(io)?;
        info!(dir = %dir.display(), "dev: --reset: deleted the demo's data directory");
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join(MARKER), "hotpatchd dev data: `hotpatchd dev --reset` deletes this directory\n")
        .map_err(io)
}

fn saved_clock(dir: &Path) -> Option<DateTime<Utc>> {
    std::fs::read_to_string(dir.join(CLOCK_FILE)).ok()?.trim().parse().ok()
}

/// The rules' settings, with the durations the service measures on its clock stretched by the
/// speed, so they last as long in real time as in production: a lease, an agent's silence.
/// (What the simulated machines take goes the other way: see [`on_clock`].)
fn stretched(config: &Config, speed: f64) -> hotpatch_api::Settings {
    let stretch = |d: TimeDelta| TimeDelta::milliseconds((d.num_milliseconds() as f64 * speed) as i64);
    let settings = config.settings();
    hotpatch_api::Settings {
        lease_ttl: stretch(settings.lease_ttl),
        agent_silence: stretch(settings.agent_silence),
        ..settings
    }
}

/// What the demo prints once it listens: where to look.
#[allow(clippy::print_stdout)] // the demo's own output, for the person who started it
fn banner(url: &str, token_file: &Path, args: &DevArgs, start: DateTime<Utc>) {
    println!(
        "\nhotpatchd dev: a demo with {machines} simulated machines, the clock at {start} running {speed}x \
         (NOT for production)\n\
         \n  API        {url}/v1  (docs {url}/docs)\
         \n  token      export HOTPATCH_URL={url} HOTPATCH_TOKEN=$(cat {token})\
         \n  rollouts   hotpatchctl rollouts list   |  curl -H \"Authorization: Bearer $HOTPATCH_TOKEN\" {url}/v1/rollouts\
         \n  live feed  curl -N -H \"Authorization: Bearer $HOTPATCH_TOKEN\" {url}/v1/events\
         \n  metrics    {url}/metrics\
         \n  state      {dir} (hotpatchd dev --reset starts over)\n",
        machines = args.machines,
        start = start.format("%Y-%m-%d %H:%M UTC"),
        speed = args.speed,
        token = token_file.display(),
        dir = args.data_dir.display(),
    );
}

/// The demo's work: the catalog as the clock reaches each release, the fleet, and progress. The
/// clock stands still until the fleet is registered, then runs at the demo's speed.
async fn drive(app: App, url: String, token: String, args: DevArgs, stop: CancellationToken) {
    let sample: Sample = match serde_json::from_str(SAMPLE) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "dev: the sample catalog does not read; no releases");
            Sample { releases: Vec::new(), updates: Vec::new() }
        }
    };
    let (mut releases, mut updates) = (sample.releases, sample.updates);
    let mut labels = HashMap::new();
    publish_due(&app, &mut releases, &mut updates, &mut labels).await;
    let clock = app.clock.clone();
    let fleet = FleetConfig {
        prefix: "dev".to_owned(),
        regions: REGIONS.iter().map(|r| (*r).to_owned()).collect(),
        sim: SimConfig {
            job_duration: on_clock(TimeDelta::minutes(15), args.speed),
            reboot_duration: on_clock(TimeDelta::minutes(10), args.speed),
            clock: Arc::new(move || clock.now()),
            ..SimConfig::default()
        },
        agent: AgentConfig { wait: Duration::from_secs(30), ..AgentConfig::default() },
        ..FleetConfig::new(&url, &token, args.machines as usize)
    };
    let fleet = tokio::select! {
        _ = stop.cancelled() => return,
        started = Fleet::start(fleet, stop.clone()) => match started {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "dev: the simulated fleet could not start");
                return;
            }
        },
    };
    app.clock.run_fast(args.speed);
    info!(machines = fleet.len(), speed = args.speed, "dev: simulated fleet running; the clock runs");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        publish_due(&app, &mut releases, &mut updates, &mut labels).await;
        ticks += 1;
        if ticks.is_multiple_of(10) {
            save_clock(&args.data_dir, app.clock.now());
            report(&app, &fleet.stats().progress().to_string(), &labels).await;
        }
    }
    save_clock(&args.data_dir, app.clock.now());
    fleet.wait().await;
}

/// Publishes, in catalog order (each OS's releases are in publishing order), what came out by
/// now, and keeps the rest for later (already published: skipped). The automatic rollouts it
/// started get a label for the progress line (KB and OS).
async fn publish_due(
    app: &App,
    releases: &mut Vec<ReleaseSpec>,
    updates: &mut Vec<UpdateSpec>,
    labels: &mut HashMap<Uuid, String>,
) {
    let now = app.clock.now();
    let (due, later): (Vec<_>, Vec<_>) =
        std::mem::take(releases).into_iter().partition(|r| r.released_at <= now);
    *releases = later;
    for spec in due {
        let (month, kb, os) = (spec.month, spec.kb.clone(), spec.os);
        match hotpatch_app::catalog::releases::publish_release(app, spec).await {
            Ok(r) => match r.automatic_rollout_id {
                Some(rollout) => {
                    labels.insert(rollout, format!("{kb} ({})", <&str>::from(os)));
                    info!(%month, %kb, %rollout, "dev: release out; its rollout starts")
                }
                None => info!(%month, %kb, "dev: release out"),
            },
            Err(hotpatch_app::AppError::Conflict(_)) => {}
            Err(e) => warn!(%month, %kb, error = %e, "dev: could not publish a sample release"),
        }
    }
    let (due, later): (Vec<_>, Vec<_>) =
        std::mem::take(updates).into_iter().partition(|u| u.released_at <= now);
    *updates = later;
    for spec in due {
        let kb = spec.kb.clone();
        match hotpatch_app::catalog::updates::publish_update(app, spec).await {
            Ok(_) | Err(hotpatch_app::AppError::Conflict(_)) => {}
            Err(e) => warn!(%kb, error = %e, "dev: could not publish a sample update"),
        }
    }
}

/// The real time that lasts `d` on a clock running `speed` times faster: an install takes its
/// quarter of an hour of the window at any speed (at least 20 ms: a few round trips).
fn on_clock(d: TimeDelta, speed: f64) -> Duration {
    Duration::from_secs_f64(d.as_seconds_f64() / speed).max(Duration::from_millis(20))
}

fn save_clock(dir: &Path, now: DateTime<Utc>) {
    if let Err(e) = std::fs::write(dir.join(CLOCK_FILE), now.to_rfc3339()) {
        warn!(error = %e, "dev: could not save the clock");
    }
}

/// One line on where the clock, the newest rollouts and the fleet are.
async fn report(app: &App, fleet: &str, labels: &HashMap<Uuid, String>) {
    let now = app.clock.now();
    let mut line = format!("dev {}:", now.format("%Y-%m-%d %H:%M"));
    match hotpatch_app::rollouts::view::list(app, None, None, 3).await {
        Ok(rollouts) if rollouts.is_empty() => {
            line.push_str(" no rollout yet (the next sample release starts one);")
        }
        Ok(rollouts) => {
            for r in rollouts.iter().rev() {
                let Ok(detail) = hotpatch_app::rollouts::view::get(app, r.id).await else { continue };
                let waves = detail.waves.len();
                let done = detail.waves.iter().filter(|w| w.counts.pending + w.counts.queued == 0).count();
                let c = &detail.counts;
                let label = labels.get(&r.id).cloned().unwrap_or_else(|| r.id.to_string());
                line.push_str(&format!(
                    " rollout {label} {}: wave {}/{waves} done, {}/{} installed, {} failed;",
                    r.state, done, c.succeeded, c.total, c.failed
                ));
            }
        }
        Err(e) => line.push_str(&format!(" rollouts unreadable: {e};")),
    }
    info!("{line} fleet: {fleet}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_catalog_reads_each_os_in_publishing_order() {
        let sample: Sample = serde_json::from_str(SAMPLE).unwrap();
        assert!(sample.releases.len() >= 12);
        for os in
            [hotpatch_domain::OsVersion::WindowsServer2022, hotpatch_domain::OsVersion::WindowsServer2025]
        {
            let of_os: Vec<_> = sample.releases.iter().filter(|r| r.os == os).collect();
            assert!(!of_os.is_empty());
            assert!(of_os.windows(2).all(|w| w[0].released_at <= w[1].released_at), "{os:?}");
        }
    }

    #[test]
    fn reset_deletes_only_a_dev_directory() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("service");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("admin-token"), "x").unwrap();
        let refused = prepare_dir(&other, true).unwrap_err().to_string();
        assert!(refused.contains("not a hotpatchd dev data directory"), "{refused}");
        assert!(other.join("admin-token").exists());

        let dev = dir.path().join("dev");
        prepare_dir(&dev, false).unwrap();
        std::fs::write(dev.join(CLOCK_FILE), "2025-11-01T00:00:00Z").unwrap();
        assert_eq!(saved_clock(&dev), Some("2025-11-01T00:00:00Z".parse().unwrap()));
        prepare_dir(&dev, true).unwrap();
        assert_eq!(saved_clock(&dev), None, "reset starts over");
        assert!(dev.join(MARKER).exists());
    }

    #[test]
    fn leases_and_silences_keep_their_real_length_at_speed() {
        let config = <Config as clap::Parser>::try_parse_from(["hotpatchd"]).unwrap();
        let s = stretched(&config, 3600.0);
        assert_eq!(s.lease_ttl, TimeDelta::seconds(120 * 3600));
        assert_eq!(s.agent_silence, TimeDelta::minutes(2 * 3600));
        assert_eq!(s.off_peak_duration, TimeDelta::hours(4), "domain durations stay as they are");
    }

    #[test]
    fn speeds_outside_the_range_are_refused() {
        assert!(parse_speed("0.5").is_err());
        assert!(parse_speed("100000").is_err());
        assert_eq!(parse_speed("60").unwrap(), 60.0);
    }
}
