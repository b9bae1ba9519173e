//! The agent's configuration file (TOML), and the token, which is never a command-line argument:
//! it comes from `HOTPATCH_AGENT_TOKEN` or from a file only its owner can read.
//!
//! ```toml
//! server = "https://hotpatch.example.com"
//! token_file = "/etc/hotpatch-agent/token"
//! ca_file = "/etc/hotpatch-agent/ca.pem"      # optional: trust this CA for the server
//! state_dir = "/var/lib/hotpatch-agent"
//! executor = "command"                         # or "simulated"
//! program = "/usr/local/lib/hotpatch-agent/executor"
//! args = []                                    # before the kind
//! env = { HTTPS_PROXY = "http://proxy:3128" }   # optional, for the program
//! job_timeout = "PT2H"                         # or seconds: 7200
//! ```
//!
//! Every key may also be given on the command line, which wins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hotpatch_domain::payload::IsoDuration;
use serde::{Deserialize, Deserializer};

/// Which executor runs the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// An operator's program per job (a real machine).
    Command,
    /// A simulated machine in memory (demos and tests): patches nothing.
    Simulated,
}

/// The configuration file's keys; all optional (the command line may give them instead).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Server base URL.
    pub server: Option<String>,
    /// The file holding the agent token.
    pub token_file: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for the server (besides the built-in roots).
    pub ca_file: Option<PathBuf>,
    /// The state directory (spool, finished-job record, job in hand).
    pub state_dir: Option<PathBuf>,
    /// The executor.
    pub executor: Option<ExecutorKind>,
    /// The command executor's program.
    pub program: Option<PathBuf>,
    /// Its arguments before the kind.
    pub args: Option<Vec<String>>,
    /// Environment variables for the program (a table).
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// A job's time limit when its payload sets none.
    #[serde(default, deserialize_with = "duration")]
    pub job_timeout: Option<Duration>,
    /// The time limit of the program's `inventory` and `health` reads.
    #[serde(default, deserialize_with = "duration")]
    pub read_timeout: Option<Duration>,
    /// How long a restart a job started may take to happen.
    #[serde(default, deserialize_with = "duration")]
    pub restart_timeout: Option<Duration>,
    /// A file whose contents identify the current boot, instead of the operating system's.
    pub boot_marker: Option<PathBuf>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the configuration file {} is not valid: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        message: String,
    },
    /// Something required is missing or wrong.
    #[error("{0}")]
    Missing(String),
}

impl FileConfig {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())
    }
}

/// A duration as seconds (`7200`) or ISO 8601 (`"PT2H"`).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spelling {
        Seconds(u64),
        Iso(String),
    }
    match Spelling::deserialize(d)? {
        Spelling::Seconds(s) => Ok(Some(Duration::from_secs(s))),
        Spelling::Iso(text) => parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Parses a duration given on the command line: seconds or ISO 8601.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(s) = text.parse::<u64>() {
        return Ok(Duration::from_secs(s));
    }
    text.parse::<IsoDuration>()
        .map(|d| d.as_std())
        .map_err(|_| format!("'{text}' is not seconds or an ISO 8601 duration like PT2H"))
}

/// The agent token: `HOTPATCH_AGENT_TOKEN` when set (`env` is its value), else the first line
/// of `token_file`.
pub fn token(env: Option<String>, token_file: Option<&Path>) -> Result<String, ConfigError> {
    if let Some(token) = env.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        return Ok(token);
    }
    let Some(path) = token_file else {
        return Err(ConfigError::Missing(
            "no agent token: set HOTPATCH_AGENT_TOKEN, or token_file in the configuration (or --token-file)"
                .to_owned(),
        ));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Ok(token.to_owned()),
        None => Err(ConfigError::Missing(format!("the token file {} is empty", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_file_reads_with_both_spellings_of_durations() {
        let c = FileConfig::parse(
            r#"
            server = "https://hotpatch.example.com"
            token_file = "/etc/hotpatch-agent/token"
            ca_file = "/etc/hotpatch-agent/ca.pem"
            state_dir = "/var/lib/hotpatch-agent"
            executor = "command"
            program = "/usr/local/lib/hotpatch-agent/executor"
            args = ["-x"]
            env = { HTTPS_PROXY = "http://proxy:3128" }
            job_timeout = "PT2H"
            read_timeout = 600
            restart_timeout = "PT30M"
            "#,
        )
        .unwrap();
        assert_eq!(c.executor, Some(ExecutorKind::Command));
        assert_eq!(c.job_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(c.read_timeout, Some(Duration::from_secs(600)));
        assert_eq!(c.restart_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(c.args.as_deref(), Some(&["-x".to_owned()][..]));
        assert_eq!(c.env.unwrap()["HTTPS_PROXY"], "http://proxy:3128");
    }

    #[test]
    fn the_shipped_example_configuration_reads() {
        let c = FileConfig::parse(include_str!("../../../deploy/agent/linux/agent.toml")).unwrap();
        assert_eq!(c.executor, Some(ExecutorKind::Command));
        assert_eq!(c.restart_timeout, Some(Duration::from_secs(1800)));
    }

    /// The file `deploy/agent/windows/install-agent.ps1` writes (as its README shows it).
    #[test]
    fn the_windows_installers_configuration_reads() {
        let c = FileConfig::parse(
            r#"
            server = "https://hotpatch.example.com"
            token_file = "C:\\ProgramData\\hotpatch\\agent\\token"
            state_dir = "C:\\ProgramData\\hotpatch\\agent"
            executor = "command"
            program = "powershell.exe"
            args = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", "C:\\Program Files\\hotpatch\\hotpatch-executor.ps1"]
            ca_file = "C:\\ProgramData\\hotpatch\\agent\\ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(c.args.unwrap().last().unwrap(), r"C:\Program Files\hotpatch\hotpatch-executor.ps1");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_place() {
        let e = FileConfig::parse("servr = \"x\"").unwrap_err();
        assert!(e.contains("servr"), "{e}");
        let e = FileConfig::parse("executor = \"powershell\"").unwrap_err();
        assert!(e.contains("powershell"), "{e}");
        let e = FileConfig::parse("job_timeout = \"two hours\"").unwrap_err();
        assert!(e.contains("two hours"), "{e}");
        // The token has no key: it never sits in a file others may read with the rest.
        assert!(FileConfig::parse("token = \"secret\"").is_err());
    }

    #[test]
    fn command_line_durations_take_both_spellings() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("PT1M30S").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_token_comes_from_the_environment_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(token(Some("from-env".into()), Some(&file)).unwrap(), "from-env");
        assert_eq!(token(Some("  ".into()), Some(&file)).unwrap(), "from-file");
        assert_eq!(token(None, Some(&file)).unwrap(), "from-file");
        assert!(token(None, None).unwrap_err().to_string().contains("HOTPATCH_AGENT_TOKEN"));
        std::fs::write(&file, "\n").unwrap();
        assert!(token(None, Some(&file)).unwrap_err().to_string().contains("empty"));
        assert!(matches!(token(None, Some(&dir.path().join("nope"))), Err(ConfigError::Read { .. })));
    }
}
