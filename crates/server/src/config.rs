//! Configuration of `hotpatchd`, from flags and the environment.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// `hotpatchd`: the control plane for Windows Server hotpatching.
#[derive(Debug, Clone, Parser)]
#[command(name = "hotpatchd", version, about)]
pub struct Config {
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

    /// Log format.
    #[arg(long, env = "HOTPATCH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
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
