//! What each job does to a simulated machine: assess, install, roll back, reboot.

use std::time::Duration;

use hotpatch_domain::job::{ClaimedJob, InstalledUpdate, JobKind};
use hotpatch_domain::payload::{InstallPayload, RebootPayload, RebootSetting, RollbackPayload, RollbackStep};
use hotpatch_domain::{Classification, Kb, OsBuild};
use rand::Rng;
use serde::Deserialize;

use super::initial::os_name;
use super::{SimulatedMachine, INSTALLED_BY};
use crate::executor::JobOutcome;

/// A job's payload; `null` (a job that carries none) is the default one.
fn payload<T: Default + for<'de> Deserialize<'de>>(value: &serde_json::Value) -> Result<T, String> {
    if value.is_null() {
        return Ok(T::default());
    }
    T::deserialize(value).map_err(|e| format!("invalid payload: {e}"))
}

impl SimulatedMachine {
    /// The effect of a job, at once: [`Executor::run`](crate::Executor::run) is this between its simulated waits.
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
        p.kb_requires_reboot(kb, |kb| self.known.get(kb).is_some_and(|u| u.requires_reboot))
    }

    /// The KBs an install payload selects on this machine (see [`InstallPayload::select`]).
    fn selected(&self, p: &InstallPayload) -> Vec<Kb> {
        p.select(&self.available, |kb| self.known.get(kb).is_some_and(|u| u.requires_reboot))
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
        if let (Some(catalog), Some(_)) = (&self.catalog, p.release_id) {
            let unknown = kbs.iter().filter(|kb| catalog.find(self.config.os, kb).is_none());
            self.newer_releases.extend(unknown.cloned());
        }
        // The build is the selected update's (the payload's, else the newest catalog release's
        // among them): with nothing selected it does not change.
        let build = if kbs.is_empty() { None } else { p.build.or_else(|| self.catalog_build(&kbs)) };
        if reboot {
            self.reboot(build);
        } else if needs_reboot {
            self.reboot_pending = true;
            self.pending_build = build.or(self.pending_build);
        } else if let Some(b) = build {
            self.os_build = b; // a hotpatch raises the build revision in place
        }
        self.refresh_offered();
        if self.rng.gen_bool(self.config.unhealthy_rate.clamp(0.0, 1.0)) {
            self.healthy = false;
        }
        Ok(JobOutcome { installed: kbs, rebooted: reboot, ..JobOutcome::succeeded(self.reboot_pending) })
    }

    /// The build of the newest catalog release among `kbs`.
    fn catalog_build(&self, kbs: &[Kb]) -> Option<OsBuild> {
        let releases = self.catalog.as_ref()?.releases(self.config.os);
        releases.iter().rev().find(|r| kbs.contains(&r.spec.kb)).map(|r| r.spec.build)
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
        self.refresh_offered();
        self.healthy = true;
        Ok(JobOutcome { installed, rebooted, ..JobOutcome::succeeded(self.reboot_pending) })
    }
}
