//! A simulated Windows Server machine: an [`Executor`] whose OS build, installed and available
//! updates, pending reboot, uptime and health live in memory, drawn from a seed so a run can be
//! repeated. Hotpatches install without a reboot; baselines reboot (or leave a reboot pending);
//! rollbacks run their plan (uninstall the latest update, install the baseline, reboot). Job
//! payloads are the shared [`hotpatch_domain::payload`] types. Job and reboot durations are
//! parameters, so a whole quarter of patching runs in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{
    AvailableUpdate, ClaimedJob, Health, HealthCheck, HealthStatus, InstalledUpdate, Inventory, JobKind,
};
use hotpatch_domain::payload::{InstallPayload, RebootPayload, RebootSetting, RollbackPayload, RollbackStep};
use hotpatch_domain::{Classification, Kb, OsBuild, OsVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

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

fn payload<T: Default + for<'de> Deserialize<'de>>(value: &serde_json::Value) -> Result<T, String> {
    if value.is_null() {
        return Ok(T::default());
    }
    T::deserialize(value).map_err(|e| format!("invalid payload: {e}"))
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
    reboot_pending: bool,
    healthy: bool,
    boot_count: u64,
    booted_at: DateTime<Utc>,
}

fn os_name(os: OsVersion) -> &'static str {
    match os {
        OsVersion::WindowsServer2022 => "Windows Server 2022",
        OsVersion::WindowsServer2025 => "Windows Server 2025",
    }
}

/// How an update of this classification is titled, e.g. "Security Update".
fn kind_title(c: Classification) -> &'static str {
    match c {
        Classification::Critical => "Critical Update",
        Classification::Security => "Security Update",
        Classification::UpdateRollup => "Update Rollup",
        Classification::FeaturePack => "Feature Pack",
        Classification::ServicePack => "Service Pack",
        Classification::Definition => "Security Intelligence Update",
        Classification::Tools => "Tools Update",
        Classification::Updates => "Cumulative Update Preview",
        Classification::Dotnet => "Cumulative Update for .NET Framework",
        Classification::Driver => "Driver Update",
        Classification::Firmware => "Firmware Update",
    }
}

/// A KB number not yet in `taken`: `KB5` and six digits.
fn fresh_kb(rng: &mut StdRng, taken: &mut BTreeSet<String>) -> Kb {
    loop {
        let text = format!("KB5{:06}", rng.gen_range(0..1_000_000));
        if taken.insert(text.clone()) {
            if let Ok(kb) = text.parse() {
                return kb;
            }
        }
    }
}

impl SimulatedMachine {
    /// A machine whose initial state is drawn from `config.seed`: a build of its OS, a few
    /// installed updates, a few critical/security updates available (hotpatches, no reboot)
    /// and a few others (non-security, .NET, drivers…).
    pub fn new(config: SimConfig) -> SimulatedMachine {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let now = (config.clock)();
        let os_build = match config.os {
            OsVersion::WindowsServer2022 => OsBuild { build: 20348, revision: rng.gen_range(2200..2300) },
            OsVersion::WindowsServer2025 => OsBuild { build: 26100, revision: rng.gen_range(1742..2300) },
        };
        let name = os_name(config.os);
        let mut taken = BTreeSet::new();
        let mut installed = Vec::new();
        let mut age_days: Vec<i64> = (0..rng.gen_range(3..=5)).map(|_| rng.gen_range(10..400)).collect();
        age_days.sort_unstable_by(|a, b| b.cmp(a));
        for days in age_days {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification =
                [Classification::Security, Classification::Critical, Classification::Updates]
                    [rng.gen_range(0..3)];
            installed.push(InstalledUpdate {
                title: Some(format!("{} for {name} ({kb})", kind_title(classification))),
                kb,
                classification: Some(classification),
                installed_on: (now - TimeDelta::days(days)).date_naive(),
                installed_by: Some("windows_update".to_owned()),
            });
        }
        let mut available = Vec::new();
        for _ in 0..rng.gen_range(2..=3) {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification = [Classification::Security, Classification::Critical][rng.gen_range(0..2)];
            let title = format!("Hotpatch {} for {name} ({kb})", kind_title(classification));
            available.push(AvailableUpdate { kb, title, classification, requires_reboot: false });
        }
        let others = [
            Classification::Updates,
            Classification::Dotnet,
            Classification::Driver,
            Classification::Definition,
            Classification::Tools,
        ];
        for _ in 0..rng.gen_range(2..=3) {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification = others[rng.gen_range(0..others.len())];
            let title = format!("{} for {name} ({kb})", kind_title(classification));
            let requires_reboot = classification.default_requires_reboot();
            available.push(AvailableUpdate { kb, title, classification, requires_reboot });
        }
        let known = available.iter().map(|u| (u.kb.clone(), u.clone())).collect();
        let booted_at = now - TimeDelta::hours(rng.gen_range(1..24 * 30));
        SimulatedMachine {
            config,
            rng,
            os_build,
            pending_build: None,
            installed,
            available,
            known,
            reboot_pending: false,
            healthy: true,
            boot_count: 1,
            booted_at,
        }
    }

    /// Takes up the state a machine's last run left (the server's record of its last
    /// assessment): its build and installed updates replace the drawn ones, and what it has
    /// installed is no longer offered. A restarted simulator so continues where it stopped.
    pub fn restore(&mut self, os_build: OsBuild, installed: Vec<InstalledUpdate>) {
        self.os_build = os_build;
        self.available.retain(|a| !installed.iter().any(|i| i.kb == a.kb));
        self.installed = installed;
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

    /// The effect of a job, at once: [`Executor::run`] is this between its simulated waits.
    pub fn apply(&mut self, job: &ClaimedJob) -> JobOutcome {
        if self.rng.gen_bool(self.config.fail_rate.clamp(0.0, 1.0)) {
            let what = <&str>::from(job.kind);
            return JobOutcome::failed(format!("simulated {what} failure (0x80070643)"), self.reboot_pending);
        }
        let outcome = match job.kind {
            JobKind::Assess => Ok(JobOutcome {
                inventory: Some(self.snapshot()),
                ..JobOutcome::succeeded(self.reboot_pending)
            }),
            JobKind::Install => self.install(&job.payload),
            JobKind::Rollback => self.rollback(&job.payload),
            JobKind::Reboot => payload::<RebootPayload>(&job.payload).map(|p| {
                self.reboot(p.build);
                JobOutcome { rebooted: true, ..JobOutcome::succeeded(false) }
            }),
        };
        outcome.unwrap_or_else(|e| JobOutcome::failed(e, self.reboot_pending))
    }

    fn reboot(&mut self, build: Option<OsBuild>) {
        if let Some(b) = build.or(self.pending_build.take()) {
            self.os_build = b;
        }
        self.pending_build = None;
        self.reboot_pending = false;
        self.boot_count += 1;
        self.booted_at = (self.config.clock)();
    }

    /// Whether installing `kb` needs a reboot: as the payload says for all its KBs, else as the
    /// machine knows the update.
    fn kb_requires_reboot(&self, p: &InstallPayload, kb: &Kb) -> bool {
        p.requires_reboot.unwrap_or_else(|| self.known.get(kb).is_some_and(|u| u.requires_reboot))
    }

    /// The KBs an install payload selects on this machine (see [`InstallPayload`]).
    fn selected(&self, p: &InstallPayload) -> Vec<Kb> {
        let mut kbs: Vec<Kb> = if p.kbs.is_empty() {
            let wanted = p.effective_classifications();
            self.available
                .iter()
                .filter(|u| wanted.contains(&u.classification) || p.kb_include.contains(&u.kb))
                .map(|u| u.kb.clone())
                .collect()
        } else {
            p.kbs.clone()
        };
        kbs.retain(|kb| !p.kb_exclude.contains(kb));
        if p.exclude_kbs_requiring_reboot {
            kbs.retain(|kb| !self.kb_requires_reboot(p, kb));
        }
        kbs
    }

    fn install(&mut self, raw: &serde_json::Value) -> Result<JobOutcome, String> {
        let p: InstallPayload = payload(raw)?;
        let kbs = self.selected(&p);
        let needs_reboot = kbs.iter().any(|kb| self.kb_requires_reboot(&p, kb));
        let reboot = match p.reboot {
            RebootSetting::Always => true,
            RebootSetting::Never => false,
            RebootSetting::IfRequired => needs_reboot || self.reboot_pending,
        };
        // The simulated work is the job's duration, plus a reboot when it reboots.
        if let Some(limit) = p.maximum_duration {
            let work =
                self.config.job_duration + if reboot { self.config.reboot_duration } else { Duration::ZERO };
            if work > limit.as_std() {
                return Err(format!(
                    "maximum duration exceeded: installing {} update(s){} takes {}s, the limit is {limit}",
                    kbs.len(),
                    if reboot { " and rebooting" } else { "" },
                    work.as_secs()
                ));
            }
        }
        let today = (self.config.clock)().date_naive();
        for kb in &kbs {
            if self.installed.iter().any(|u| &u.kb == kb) {
                continue; // a retried attempt: already in
            }
            self.available.retain(|u| &u.kb != kb);
            let known = self.known.get(kb);
            self.installed.push(InstalledUpdate {
                kb: kb.clone(),
                title: known.map(|u| u.title.clone()),
                classification: known.map(|u| u.classification),
                installed_on: today,
                installed_by: Some(INSTALLED_BY.to_owned()),
            });
        }
        // The build is the selected update's: with nothing selected it does not change.
        let build = if kbs.is_empty() { None } else { p.build };
        if reboot {
            self.reboot(build);
        } else if needs_reboot {
            self.reboot_pending = true;
            self.pending_build = build.or(self.pending_build);
        } else if let Some(b) = build {
            self.os_build = b; // a hotpatch raises the build revision in place
        }
        if self.rng.gen_bool(self.config.unhealthy_rate.clamp(0.0, 1.0)) {
            self.healthy = false;
        }
        Ok(JobOutcome { installed: kbs, rebooted: reboot, ..JobOutcome::succeeded(self.reboot_pending) })
    }

    /// Takes `kb` off the machine; the update is offered again.
    fn uninstall(&mut self, kb: &Kb) {
        self.installed.retain(|u| &u.kb != kb);
        if let Some(u) = self.known.get(kb) {
            if !self.available.iter().any(|a| &a.kb == kb) {
                self.available.push(u.clone());
            }
        }
    }

    /// Runs a rollback plan step by step: uninstall the latest update, (re)install the
    /// baseline, reboot into the baseline's build. Each step is idempotent, so a retried
    /// attempt after a lost lease does not remove a second update. A payload without steps
    /// (older jobs) removes the latest installed update and reboots.
    fn rollback(&mut self, raw: &serde_json::Value) -> Result<JobOutcome, String> {
        let p: RollbackPayload = payload(raw)?;
        let mut installed = Vec::new();
        let mut rebooted = false;
        if p.steps.is_empty() {
            let latest =
                self.installed.last().map(|u| u.kb.clone()).ok_or("no installed update to roll back")?;
            self.uninstall(&latest);
            self.reboot(p.build);
            rebooted = true;
        }
        for step in &p.steps {
            match step {
                RollbackStep::Uninstall { release } => self.uninstall(&release.kb),
                RollbackStep::Install { release } => {
                    if !self.installed.iter().any(|u| u.kb == release.kb) {
                        self.available.retain(|u| u.kb != release.kb);
                        self.installed.push(InstalledUpdate {
                            kb: release.kb.clone(),
                            title: Some(format!(
                                "{} Cumulative Update for {} ({})",
                                release.month,
                                os_name(self.config.os),
                                release.kb
                            )),
                            classification: Some(Classification::Security),
                            installed_on: (self.config.clock)().date_naive(),
                            installed_by: Some(INSTALLED_BY.to_owned()),
                        });
                    }
                    installed.push(release.kb.clone());
                }
                RollbackStep::Reboot => {
                    self.reboot(p.build.or(p.installs().map(|r| r.build)));
                    rebooted = true;
                }
            }
        }
        self.healthy = true;
        Ok(JobOutcome { installed, rebooted, ..JobOutcome::succeeded(self.reboot_pending) })
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
