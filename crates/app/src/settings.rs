//! Server settings the rules read (from `hotpatchd`'s flags and environment).

/// [`Settings::job_ttl`] by default: a day, as long as the periodic assessment's interval.
pub const DEFAULT_JOB_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// [`Settings::max_selected`] by default: a fleet of a million machines in one rollout or
/// assessment (planned in memory within the server's 2 GiB budget, see bench/million.sh).
pub const DEFAULT_MAX_SELECTED: usize = 1_000_000;

/// [`Settings::audit_retention`] by default.
pub const DEFAULT_AUDIT_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(90);

/// Server settings the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Which months are baseline months, per OS (default January, April, July, October).
    pub calendar: hotpatch_scheduler::cycle::CalendarRule,
    /// Local start of the default off-peak window of machines without a maintenance configuration.
    pub off_peak_start: chrono::NaiveTime,
    /// Length of the default off-peak window.
    pub off_peak_duration: chrono::TimeDelta,
    /// How long a claimed job's lease lasts without a heartbeat.
    pub lease_ttl: chrono::TimeDelta,
    /// How often every machine is assessed (jittered per machine by ±10%).
    pub assessment_interval: chrono::TimeDelta,
    /// Publishing a current release starts its rollout to `automatic_by_platform` machines.
    pub automatic_rollouts: bool,
    /// The largest batch of machines outside availability sets in automatic rollouts, in
    /// percent (1–100; sets keep their 20% cap).
    pub automatic_max_batch_percent: u32,
    /// `PUT /v1/admin/clock` may move the service clock (tests and demos only).
    pub clock_control: bool,
    /// An agent silent for this long counts as disconnected (patch status) and is reported lost
    /// (`agent.lost`).
    pub agent_silence: chrono::TimeDelta,
    /// A job of an operation (assess, install, rollback now) or a periodic assessment that no
    /// agent claimed within this time of its creation ends `expired` (rollout installs are bound
    /// by their windows instead).
    pub job_ttl: chrono::TimeDelta,
    /// How long the audit log keeps an entry (by database time).
    pub audit_retention: chrono::TimeDelta,
    /// Most machines one rollout or bulk assessment may select.
    pub max_selected: usize,
    /// Internal address blocks webhooks may deliver to (by default none: loopback, private,
    /// link-local … addresses are refused; see `hotpatch_domain::webhook_target`).
    pub webhook_allow: hotpatch_domain::webhook_target::AllowList,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            calendar: Default::default(),
            off_peak_start: chrono::NaiveTime::MIN + chrono::TimeDelta::hours(1),
            off_peak_duration: chrono::TimeDelta::hours(4),
            lease_ttl: chrono::TimeDelta::seconds(120),
            assessment_interval: chrono::TimeDelta::hours(24),
            automatic_rollouts: true,
            automatic_max_batch_percent: hotpatch_domain::rollout::DEFAULT_MAX_BATCH_PERCENT,
            clock_control: false,
            agent_silence: hotpatch_store::events::AGENT_SILENCE,
            job_ttl: DEFAULT_JOB_TTL,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            max_selected: DEFAULT_MAX_SELECTED,
            webhook_allow: Default::default(),
        }
    }
}
