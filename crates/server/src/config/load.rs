//! Reading the configuration: flags, the environment and the TOML file `--config` names, in
//! that order of precedence, with the file's keys checked one by one so that an error names its
//! key; and which settings are not at their default, for the start's log.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::CommandFactory;

use super::Config;

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
    /// The file, or one of its keys, is not valid.
    #[error("the configuration file {}: {message}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A flag or an environment variable is not valid (clap's own message and exit code).
    #[error(transparent)]
    Args(#[from] clap::Error),
}

/// Where a setting that is not at its default came from, for the start's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its key (the long flag's name with `_`).
    pub key: String,
    /// Its value, `<redacted>` for secrets.
    pub value: String,
    /// `flag`, `environment` or `file`.
    pub source: &'static str,
}

/// Settings whose values are never logged.
const SECRETS: [&str; 3] = ["database_url", "admin_token", "metrics_token"];

impl Config {
    /// Reads the configuration from `args` (the process's, first the program name), the
    /// environment and the TOML file `--config`/`HOTPATCH_CONFIG` names: a flag wins over the
    /// environment, which wins over the file, which wins over the default. Returns it with the
    /// settings that are not at their default. A file key that is unknown, of the wrong type or
    /// out of range is an error naming the key.
    pub fn load<I, T>(args: I) -> Result<(Config, Vec<Setting>), ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        // The file's name first: a flag, else the environment (clap reads both the same way).
        let first = Config::command().ignore_errors(true).try_get_matches_from(&args)?;
        let path = first.get_one::<PathBuf>("config").cloned();
        let mut from_file = Vec::new();
        if let Some(path) = &path {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let flags = file_flags(&text, &first)
                .map_err(|message| ConfigError::File { path: path.clone(), message })?;
            // After the program name, before any subcommand: the file's settings are the
            // service's, and a flag given too was left out above.
            for (key, flag) in flags {
                from_file.push(key);
                args.insert(1, flag);
            }
        }
        let matches = Config::command().try_get_matches_from(&args)?;
        let config = <Config as clap::FromArgMatches>::from_arg_matches(&matches)?;
        let mut changed = Vec::new();
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) if from_file.iter().any(|k| k == id) => "file",
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                _ => continue,
            };
            let value = if SECRETS.contains(&id) {
                "<redacted>".to_owned()
            } else {
                matches
                    .get_raw(id)
                    .into_iter()
                    .flatten()
                    .map(|v| v.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            changed.push(Setting { key: id.to_owned(), value, source });
        }
        Ok((config, changed))
    }
}

/// The flags (`--long=value`) the file's keys stand for, leaving out those already given by a
/// flag or the environment; each value checked on its own so an error names its key.
fn file_flags(text: &str, given: &clap::ArgMatches) -> Result<Vec<(String, OsString)>, String> {
    let table: BTreeMap<String, toml::Value> =
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
    let command = Config::command();
    // Each value is checked alone, without the environment, so that its error is its own.
    let mut alone = Config::command().mut_args(|a| a.env(None::<&str>));
    let mut flags = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == key) && a.get_id() != "config")
            .ok_or_else(|| {
                let known: Vec<String> = command
                    .get_arguments()
                    .filter_map(|a| a.get_long())
                    .filter(|l| *l != "config" && *l != "help" && *l != "version")
                    .map(|l| l.replace('-', "_"))
                    .collect();
                format!("unknown key `{key}`; the keys are {}", known.join(", "))
            })?;
        let long = arg.get_long().unwrap_or_default();
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "key `{key}`: a list of strings is expected, found a {}",
                        other.type_str()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(format!(
                    "key `{key}`: expected a string, number, boolean or list, found a {}",
                    other.type_str()
                ))
            }
        };
        let flag = OsString::from(format!("--{long}={text}"));
        if let Err(e) = alone.try_get_matches_from_mut([OsString::from("hotpatchd"), flag.clone()]) {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            return Err(format!("key `{key}`: {why}"));
        }
        let id = arg.get_id().as_str();
        let already =
            matches!(given.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        if !already {
            flags.push((id.to_owned(), flag));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotpatchd.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn the_file_sets_what_flags_do_not_and_flags_win() {
        let (_dir, path) = file(
            "listen = \"0.0.0.0:9000\"\noff_peak_minutes = 180\nautomatic_rollouts = false\n\
             webhook_allow = [\"10.0.0.0/8\", \"fd00::/8\"]\nadmin_token = \"a-secret-token-of-at-least-32-characters\"\n",
        );
        let (config, changed) =
            Config::load(["hotpatchd", "--config", &path, "--off-peak-minutes", "90"]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.off_peak_minutes, 90, "the flag wins over the file");
        assert!(!config.automatic_rollouts);
        assert!(config.webhook_allow.contains("10.1.2.3".parse().unwrap()));
        let source = |key: &str| changed.iter().find(|s| s.key == key).map(|s| (s.source, s.value.clone()));
        assert_eq!(source("listen"), Some(("file", "0.0.0.0:9000".to_owned())));
        assert_eq!(source("off_peak_minutes"), Some(("flag", "90".to_owned())));
        assert_eq!(source("admin_token"), Some(("file", "<redacted>".to_owned())), "secrets are not logged");
        assert_eq!(source("lease_secs"), None, "defaults are not listed");
    }

    #[test]
    fn a_file_key_that_is_unknown_or_wrong_is_named() {
        let (_dir, path) = file("listn = \"x\"\n");
        let e = Config::load(["hotpatchd", "--config", &path]).unwrap_err().to_string();
        assert!(e.contains("unknown key `listn`") && e.contains("listen") && e.contains(&path), "{e}");
        let (_dir, path) = file("off_peak_minutes = 20\n");
        let e = Config::load(["hotpatchd", "--config", &path]).unwrap_err().to_string();
        assert!(e.contains("key `off_peak_minutes`") && e.contains("20"), "{e}");
        let (_dir, path) = file("lease_secs = { a = 1 }\n");
        let e = Config::load(["hotpatchd", "--config", &path]).unwrap_err().to_string();
        assert!(e.contains("key `lease_secs`"), "{e}");
        let (_dir, path) = file("listen = \n");
        assert!(Config::load(["hotpatchd", "--config", &path]).unwrap_err().to_string().contains(&path));
        let missing = Config::load(["hotpatchd", "--config", "/nonexistent/hotpatchd.toml"]).unwrap_err();
        assert!(missing.to_string().contains("cannot read the configuration file"), "{missing}");
    }

    #[test]
    fn a_subcommand_after_the_files_settings_still_parses() {
        let (_dir, path) = file("off_peak_minutes = 120\n");
        let (config, _) = Config::load(["hotpatchd", "--config", &path, "dev", "--machines", "20"]).unwrap();
        assert_eq!(config.off_peak_minutes, 120);
        assert!(matches!(config.command, Some(Command::Dev(ref d)) if d.machines == 20));
    }
}
