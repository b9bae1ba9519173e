//! Configuration of `hotpatchd`: flags, the environment and a TOML file (`--config`,
//! `HOTPATCH_CONFIG`) whose keys are the flags' names with `_` (`listen`, `off_peak_minutes`,
//! `webhook_allow`, …). A flag wins over the environment, which wins over the file, which wins
//! over the default (see [`Config::load`]).

mod load;

use std::path::PathBuf;

use chrono::{NaiveTime, TimeDelta};
use clap::{Parser, Subcommand, ValueEnum};
use hotpatch_api::limits::LimitSettings;
use hotpatch_api::Settings;
use hotpatch_domain::webhook_target::AllowList;
use hotpatch_domain::OsVersion;
use hotpatch_scheduler::cycle::CalendarRule;

pub use load::{ConfigError, Setting};

/// `hotpatchd`: the control plane for Windows Server hotpatching.
#[derive(Debug, Clone, Parser)]
#[command(name = "hotpatchd", version, about)]
pub struct Config {
    /// A TOML file with settings: any flag below by its long name with `_` (e.g. `listen =
    /// "0.0.0.0:8080"`, `off_peak_minutes = 180`). Flags and environment variables win over it.
    #[arg(long, env = "HOTPATCH_CONFIG")]
    pub config: Option<PathBuf>,

    /// PostgreSQL to use; without it, hotpatchd runs an embedded PostgreSQL in the data directory
    /// from the installed PostgreSQL binaries.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address to listen on (port 0: any free port; the log says which).
    #[arg(long, env = "HOTPATCH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Directory for the embedded PostgreSQL and the generated admin token (relative paths are
    /// relative to the current directory).
    #[arg(long, env = "HOTPATCH_DATA_DIR", default_value = ".hotpatch")]
    pub data_dir: PathBuf,

    /// The bootstrap admin token; without it, one is generated at first start and written to
    /// `<data dir>/admin-token`.
    #[arg(long, env = "HOTPATCH_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// The directory of the PostgreSQL binaries (initdb, pg_ctl, postgres) for the embedded server;
    /// without it they are looked for on PATH, with `pg_config --bindir` and in
    /// /usr/lib/postgresql/*/bin.
    #[arg(long, env = "HOTPATCH_PG_BIN_DIR")]
    pub pg_bin_dir: Option<String>,

    /// What to log, in `tracing` EnvFilter syntax (`info`, `hotpatch_api=debug,info`, …).
    #[arg(long, env = "HOTPATCH_LOG", default_value = "info")]
    pub log_level: String,

    /// An OpenTelemetry collector's OTLP/HTTP endpoint (e.g. `http://otel-collector:4318`): one
    /// span per request and per background pass is exported there, and log lines carry the
    /// trace id. Without it no trace leaves the process.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format.
    #[arg(long, env = "HOTPATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// First baseline month of the year (1, 2 or 3): baselines come every three months from it
    /// (1 = January, April, July, October).
    #[arg(long, env = "HOTPATCH_BASELINE_FIRST_MONTH", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=3))]
    pub baseline_first_month: u32,

    /// Per-OS exceptions to the first baseline month, e.g. `windows_server_2025=2`
    /// (comma-separated).
    #[arg(long, env = "HOTPATCH_BASELINE_FIRST_MONTH_BY_OS", value_delimiter = ',',
          value_parser = parse_os_month)]
    pub baseline_first_month_by_os: Vec<(OsVersion, u32)>,

    /// Local start (`HH:MM`) of the default off-peak window of machines without a maintenance
    /// configuration.
    #[arg(long, env = "HOTPATCH_OFF_PEAK_START", default_value = "01:00", value_parser = parse_hh_mm)]
    pub off_peak_start: NaiveTime,

    /// Length in minutes (30–1440) of the default off-peak window.
    #[arg(long, env = "HOTPATCH_OFF_PEAK_MINUTES", default_value_t = 240,
          value_parser = clap::value_parser!(u32).range(30..=1440))]
    pub off_peak_minutes: u32,

    /// Seconds a claimed job's lease lasts without a heartbeat (5–3600); after that the job goes
    /// back to the queue for another attempt.
    #[arg(long, env = "HOTPATCH_LEASE_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(5..=3600))]
    pub lease_secs: u32,

    /// Seconds between periodic assessments of a machine (60 s – 7 days; each machine is jittered
    /// by ±10%).
    #[arg(long, env = "HOTPATCH_ASSESSMENT_INTERVAL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(60..=604_800))]
    pub assessment_interval_secs: u32,

    /// Seconds (60 s – 30 days) a job of an operation (assess, install, rollback now) or a
    /// periodic assessment waits for its agent; unclaimed after that, it ends `expired` and its
    /// operation can finish. Rollout installs are bound by their windows instead.
    #[arg(long, env = "HOTPATCH_JOB_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(60..=2_592_000))]
    pub job_ttl_secs: u32,

    /// Days (1–3650) the audit log (`GET /v1/audit`) keeps an entry.
    #[arg(long, env = "HOTPATCH_AUDIT_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub audit_retention_days: u32,

    /// Connections to PostgreSQL this replica keeps at most (2–200). More is not faster on a small
    /// database server: each busy connection is a backend process competing for its cores.
    #[arg(long, env = "HOTPATCH_DB_POOL_SIZE", default_value_t = hotpatch_store::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u32).range(2..=200))]
    pub db_pool_size: u32,

    /// Publishing a current release (within its 30-day deadline) starts its rollout to every
    /// `automatic_by_platform` machine; `false` leaves rollouts to operators.
    #[arg(long, env = "HOTPATCH_AUTOMATIC_ROLLOUTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub automatic_rollouts: bool,

    /// The largest batch (1–100, percent of their region and zone) of machines outside
    /// availability sets in automatic rollouts; sets never go above 20%.
    #[arg(long, env = "HOTPATCH_AUTOMATIC_MAX_BATCH_PERCENT",
          default_value_t = hotpatch_domain::rollout::DEFAULT_MAX_BATCH_PERCENT,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub automatic_max_batch_percent: u32,

    /// Most machines one rollout or bulk assessment may select (the plan is built in memory:
    /// about 1 GiB at a million machines).
    #[arg(long, env = "HOTPATCH_MAX_SELECTED",
          default_value_t = hotpatch_app::settings::DEFAULT_MAX_SELECTED as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_selected: u32,

    /// Lets an admin move the service clock (`PUT /v1/admin/clock`): for end-to-end tests and
    /// demos that bring maintenance windows in seconds. Never in production.
    #[arg(long, env = "HOTPATCH_CLOCK_CONTROL", default_value_t = false, action = clap::ArgAction::Set)]
    pub clock_control: bool,

    /// Milliseconds between passes of the rollout dispatcher (100–60000).
    #[arg(long, env = "HOTPATCH_DISPATCH_INTERVAL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub dispatch_interval_ms: u64,

    /// Seconds (1–300) open requests may take to finish after SIGTERM or SIGINT. Long polls and
    /// event streams end at once; this bounds the rest, then the process exits.
    #[arg(long, env = "HOTPATCH_SHUTDOWN_TIMEOUT_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub shutdown_timeout_secs: u64,

    /// A secret `/metrics` then requires as `Authorization: Bearer <token>`; without it
    /// `/metrics` is open to whoever reaches the listener.
    #[arg(long, env = "HOTPATCH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Requests per second one token may make (bursts of twice as many; agents are exempt, their
    /// long polls are capped instead); 0: unlimited.
    #[arg(long, env = "HOTPATCH_RATE_LIMIT_PER_TOKEN", default_value_t = 100)]
    pub rate_limit_per_token: u32,

    /// Requests per second from one address (bursts of twice as many; the agent protocol, health
    /// checks and metrics are exempt); 0: unlimited.
    #[arg(long, env = "HOTPATCH_RATE_LIMIT_PER_ADDRESS", default_value_t = 200)]
    pub rate_limit_per_address: u32,

    /// Event streams (`GET /v1/events`) one token may hold open.
    #[arg(long, env = "HOTPATCH_MAX_STREAMS_PER_TOKEN", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams_per_token: u64,

    /// Event streams open at once on this replica (also kept within the open-file limit).
    #[arg(long, env = "HOTPATCH_MAX_STREAMS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_streams: u64,

    /// Long polls (waiting claims, operation waits) one token may hold open.
    #[arg(long, env = "HOTPATCH_MAX_POLLS_PER_TOKEN", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_polls_per_token: u64,

    /// Long polls open at once on this replica (also kept within the open-file limit).
    #[arg(long, env = "HOTPATCH_MAX_POLLS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_polls: u64,

    /// MiB of memory for patch status answers kept between polls (0: compute every answer).
    /// About 1.2 KiB per machine; the default holds 100,000 machines.
    #[arg(long, env = "HOTPATCH_STATUS_CACHE_MB", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub status_cache_mb: u64,

    /// Internal address blocks webhooks may deliver to, comma-separated CIDRs (e.g.
    /// `10.20.0.0/16,fd00::/8`). Without it, webhooks to loopback, private, link-local and other
    /// internal addresses are refused, at creation and at every connection.
    #[arg(long = "webhook-allow", env = "HOTPATCH_WEBHOOK_ALLOW_CIDRS", default_value = "",
          value_parser = parse_allow_list)]
    pub webhook_allow: AllowList,

    /// Reverse proxies or load balancers in front of this replica, comma-separated CIDRs (e.g.
    /// `10.0.0.0/8`): from a peer in them, the client's address (for the per-address rate) is
    /// read from `X-Forwarded-For`. Without it the peer is the client.
    #[arg(long, env = "HOTPATCH_TRUSTED_PROXIES", default_value = "", value_parser = parse_allow_list)]
    pub trusted_proxies: AllowList,

    /// What to run (the service itself when none).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `hotpatchd` runs besides the service.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// A self-contained demo: the embedded PostgreSQL, the sample catalog, a simulated fleet
    /// with its agents in this process and a fast clock, so rollouts go through real
    /// maintenance windows in seconds. Never for production.
    Dev(crate::dev::DevArgs),
}

fn parse_allow_list(s: &str) -> Result<AllowList, String> {
    s.parse().map_err(|e: hotpatch_domain::webhook_target::CidrError| e.to_string())
}

fn parse_hh_mm(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("'{s}' is not a local time HH:MM, e.g. 01:00"))
}

fn parse_os_month(s: &str) -> Result<(OsVersion, u32), String> {
    let bad = || format!("'{s}' is not <os>=<1|2|3>, e.g. windows_server_2025=2");
    let (os, month) = s.split_once('=').ok_or_else(bad)?;
    let os: OsVersion = os.trim().parse().map_err(|_| bad())?;
    let month: u32 = month.trim().parse().map_err(|_| bad())?;
    if !(1..=3).contains(&month) {
        return Err(bad());
    }
    Ok((os, month))
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The database URL, if one is given (an empty `DATABASE_URL=` counts as none).
    pub fn database_url(&self) -> Option<&str> {
        non_empty(self.database_url.as_deref())
    }

    /// The directory of the PostgreSQL binaries, if one is given (empty counts as none).
    pub fn pg_bin_dir(&self) -> Option<PathBuf> {
        non_empty(self.pg_bin_dir.as_deref()).map(PathBuf::from)
    }

    /// The settings the API's rules read.
    pub fn settings(&self) -> Settings {
        Settings {
            calendar: CalendarRule {
                default_first_month: self.baseline_first_month,
                first_month: self.baseline_first_month_by_os.iter().copied().collect(),
            },
            off_peak_start: self.off_peak_start,
            off_peak_duration: TimeDelta::minutes(i64::from(self.off_peak_minutes)),
            lease_ttl: TimeDelta::seconds(i64::from(self.lease_secs)),
            assessment_interval: TimeDelta::seconds(i64::from(self.assessment_interval_secs)),
            automatic_rollouts: self.automatic_rollouts,
            automatic_max_batch_percent: self.automatic_max_batch_percent,
            clock_control: self.clock_control,
            agent_silence: hotpatch_store::events::AGENT_SILENCE,
            job_ttl: TimeDelta::seconds(i64::from(self.job_ttl_secs)),
            audit_retention: TimeDelta::days(i64::from(self.audit_retention_days)),
            max_selected: self.max_selected as usize,
            webhook_allow: self.webhook_allow.clone(),
        }
    }

    /// The limits on clients, the open-request caps kept within `open_files` file descriptors
    /// (a quarter of what is left after the pool and a reserve for streams, the rest for polls).
    pub fn limits(&self, open_files: u64) -> LimitSettings {
        let budget = open_files.saturating_sub(256 + u64::from(self.db_pool_size)).max(64);
        let streams = self.max_streams.min(budget / 4);
        let polls = self.max_polls.min(budget - streams);
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        LimitSettings {
            per_token_rps: self.rate_limit_per_token,
            per_address_rps: self.rate_limit_per_address,
            streams_per_token: size(self.max_streams_per_token),
            streams_total: size(streams),
            polls_per_token: size(self.max_polls_per_token),
            polls_total: size(polls),
        }
    }

    /// The metrics token, if one is given (empty counts as none).
    pub fn metrics_token(&self) -> Option<&str> {
        non_empty(self.metrics_token.as_deref())
    }

    /// The bootstrap admin token, if one is given (empty counts as none).
    pub fn admin_token(&self) -> Option<&str> {
        non_empty(self.admin_token.as_deref())
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_localhost_8080_with_a_relative_data_dir() {
        let config = Config::try_parse_from(["hotpatchd"]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from(".hotpatch"));
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn settings_default_to_quarterly_baselines_from_january_and_a_0100_four_hour_window() {
        let config = Config::try_parse_from(["hotpatchd"]).unwrap();
        assert_eq!(config.settings(), Settings::default());
    }

    #[test]
    fn settings_come_from_flags() {
        let config = Config::try_parse_from([
            "hotpatchd",
            "--baseline-first-month",
            "2",
            "--baseline-first-month-by-os",
            "windows_server_2025=3",
            "--off-peak-start",
            "22:30",
            "--off-peak-minutes",
            "90",
        ])
        .unwrap();
        let s = config.settings();
        assert_eq!(s.calendar.default_first_month, 2);
        assert_eq!(s.calendar.first_month.get(&OsVersion::WindowsServer2025), Some(&3));
        assert_eq!(s.off_peak_start, NaiveTime::from_hms_opt(22, 30, 0).unwrap());
        assert_eq!(s.off_peak_duration, TimeDelta::minutes(90));
    }

    #[test]
    fn open_request_caps_stay_within_the_open_file_limit() {
        let config = Config::try_parse_from(["hotpatchd"]).unwrap();
        let roomy = config.limits(1 << 20);
        assert_eq!((roomy.streams_total, roomy.polls_total), (2_000, 20_000));
        assert_eq!(roomy.per_token_rps, 100);
        let tight = config.limits(1024);
        assert!(tight.streams_total + tight.polls_total <= 1024 - 256, "{tight:?}");
        assert!(tight.streams_total > 0 && tight.polls_total > tight.streams_total, "{tight:?}");
    }

    #[test]
    fn the_webhook_allow_list_comes_from_a_flag_of_cidrs() {
        let config =
            Config::try_parse_from(["hotpatchd", "--webhook-allow", "10.0.0.0/8, fd00::/8"]).unwrap();
        let allow = config.settings().webhook_allow;
        assert!(allow.contains("10.1.2.3".parse().unwrap()));
        assert!(allow.contains("fd00::1".parse().unwrap()));
        assert!(!allow.contains("127.0.0.1".parse().unwrap()));
        assert!(Config::try_parse_from(["hotpatchd", "--webhook-allow", "10.0.0.0/40"]).is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        for args in [
            ["--baseline-first-month", "4"],
            ["--baseline-first-month-by-os", "windows_server_2019=1"],
            ["--off-peak-start", "25:00"],
            ["--off-peak-minutes", "20"],
        ] {
            assert!(Config::try_parse_from(std::iter::once("hotpatchd").chain(args)).is_err(), "{args:?}");
        }
    }

    #[test]
    fn empty_database_url_admin_token_and_bin_dir_count_as_unset() {
        let config = Config::try_parse_from([
            "hotpatchd",
            "--database-url",
            "",
            "--admin-token",
            " ",
            "--pg-bin-dir",
            "",
        ])
        .unwrap();
        assert_eq!(config.database_url(), None);
        assert_eq!(config.admin_token(), None);
        assert_eq!(config.pg_bin_dir(), None);
    }

    #[test]
    fn log_format_is_pretty_or_json() {
        let config = Config::try_parse_from(["hotpatchd", "--log-format", "json"]).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(Config::try_parse_from(["hotpatchd", "--log-format", "xml"]).is_err());
    }
}
