//! A simulated Windows Server machine: an [`Executor`] whose OS build, installed and available
//! updates, pending reboot, uptime and health live in memory, drawn from a seed so a run can be
//! repeated. Hotpatches install without a reboot; baselines reboot (or leave a reboot pending);
//! rollbacks run their plan (uninstall the latest update, install the baseline, reboot). Job
//! payloads are the shared [`hotpatch_domain::payload`] types. Job and reboot durations are
//! parameters, so a whole quarter of patching runs in seconds.
//!
//! A machine made with [`SimulatedMachine::from_catalog`] starts from the server's release
//! catalog ([`SimCatalog`]): its installed KBs and build are a cycle's baseline and hotpatches,
//! and it is offered the releases that come next, so the server places it in the cycle and
//! installing the current release makes it compliant.

//!
//! The catalog as machines know it is in `catalog.rs`, the initial state drawn from the seed in
//! `initial.rs`, the effect of each job in `jobs.rs`.

mod catalog;
mod initial;
mod jobs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{
    AvailableUpdate, ClaimedJob, Health, HealthCheck, HealthStatus, InstalledUpdate, Inventory,
};
use hotpatch_domain::{Kb, OsBuild, OsVersion};
use rand::rngs::StdRng;

use self::catalog::as_available;
pub use self::catalog::{Cycle, SimCatalog};
use crate::executor::{Executor, ExecutorError, JobOutcome};

/// Reads the current instant (injected so tests pin time).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Who installed an update through this control plane.
pub const INSTALLED_BY: &str = "hotpatch";

/// How a simulated machine behaves.
#[derive(Clone)]
pub struct SimConfig {
    /// The Windows Server release (decides the build numbers).
    pub os: OsVersion,
    /// Seed of the machine's random choices (initial updates and failures).
    pub seed: u64,
    /// How long a job works before its effect.
    pub job_duration: Duration,
    /// How long a reboot takes.
    pub reboot_duration: Duration,
    /// Probability that a job fails (0.0–1.0).
    pub fail_rate: f64,
    /// Probability that the machine turns unhealthy after an install (0.0–1.0).
    pub unhealthy_rate: f64,
    /// The clock for install dates and boot times.
    pub clock: Clock,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            os: OsVersion::WindowsServer2022,
            seed: 0,
            job_duration: Duration::from_millis(200),
            reboot_duration: Duration::from_secs(1),
            fail_rate: 0.0,
            unhealthy_rate: 0.0,
            clock: Arc::new(Utc::now),
        }
    }
}

/// One simulated machine.
pub struct SimulatedMachine {
    config: SimConfig,
    rng: StdRng,
    os_build: OsBuild,
    /// The build a baseline installed without reboot takes effect with at the next boot.
    pending_build: Option<OsBuild>,
    /// In install order: the last one is the latest.
    installed: Vec<InstalledUpdate>,
    available: Vec<AvailableUpdate>,
    /// Metadata of every update the machine has known, so a rolled-back one is offered again.
    known: BTreeMap<Kb, AvailableUpdate>,
    /// The catalog the machine started from, if any: it decides which releases are offered.
    catalog: Option<Arc<SimCatalog>>,
    /// Installed releases the catalog does not know (published after the simulator read it).
    newer_releases: BTreeSet<Kb>,
    reboot_pending: bool,
    healthy: bool,
    boot_count: u64,
    booted_at: DateTime<Utc>,
}

impl SimulatedMachine {
    /// Takes up the state a machine's last run left (the server's record of its last
    /// assessment): its build and installed updates replace the drawn ones, and what it has
    /// installed is no longer offered. A restarted simulator so continues where it stopped.
    pub fn restore(&mut self, os_build: OsBuild, installed: Vec<InstalledUpdate>) {
        self.os_build = os_build;
        self.available.retain(|a| !installed.iter().any(|i| i.kb == a.kb));
        self.installed = installed;
        self.refresh_offered();
    }

    /// Offers the catalog releases the catalog says come next for what is installed now, in
    /// place of those offered before (a release is cumulative: installing the newest one
    /// leaves nothing older to offer). Nothing of the catalog is offered once a release it does
    /// not know is installed: that one is newer. Without a catalog, nothing changes.
    fn refresh_offered(&mut self) {
        let Some(catalog) = &self.catalog else { return };
        let os = self.config.os;
        self.available.retain(|u| catalog.find(os, &u.kb).is_none());
        if self.installed.iter().any(|u| self.newer_releases.contains(&u.kb)) {
            return;
        }
        let offered = catalog.offered(os, self.installed.iter().map(|u| &u.kb));
        self.available.extend(offered.into_iter().map(as_available));
    }

    /// The current OS build.
    pub fn os_build(&self) -> OsBuild {
        self.os_build
    }

    /// Installed updates, oldest first.
    pub fn installed(&self) -> &[InstalledUpdate] {
        &self.installed
    }

    /// Updates available to install.
    pub fn available(&self) -> &[AvailableUpdate] {
        &self.available
    }

    /// Whether a reboot is pending.
    pub fn reboot_pending(&self) -> bool {
        self.reboot_pending
    }

    /// How many times the machine has booted (1 before its first simulated reboot).
    pub fn boot_count(&self) -> u64 {
        self.boot_count
    }

    /// When the machine last booted.
    pub fn booted_at(&self) -> DateTime<Utc> {
        self.booted_at
    }

    /// Whether the machine's workload is healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// The machine's inventory now.
    pub fn snapshot(&self) -> Inventory {
        Inventory {
            os_build: self.os_build,
            reboot_pending: self.reboot_pending,
            installed_updates: self.installed.clone(),
            available_updates: self.available.clone(),
        }
    }

    /// The machine's health now.
    pub fn health_now(&self) -> Health {
        let (status, detail) = if self.healthy {
            (HealthStatus::Healthy, None)
        } else {
            (HealthStatus::Unhealthy, Some("simulated workload failure after the last install".to_owned()))
        };
        let uptime = HealthCheck {
            name: "uptime".to_owned(),
            status: HealthStatus::Healthy,
            detail: Some(format!("boot {} at {}", self.boot_count, self.booted_at.to_rfc3339())),
        };
        Health { status, checks: vec![HealthCheck { name: "workload".to_owned(), status, detail }, uptime] }
    }
}

impl Executor for SimulatedMachine {
    async fn inventory(&mut self) -> Result<Inventory, ExecutorError> {
        Ok(self.snapshot())
    }

    async fn run(&mut self, job: &ClaimedJob) -> JobOutcome {
        tokio::time::sleep(self.config.job_duration).await;
        let outcome = self.apply(job);
        if outcome.rebooted {
            tokio::time::sleep(self.config.reboot_duration).await;
        }
        outcome
    }

    async fn health(&mut self) -> Health {
        self.health_now()
    }
}
