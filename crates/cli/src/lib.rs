//! `hotpatchctl`: the command line client of the hotpatch control plane, for operators at a
//! terminal and CI pipelines. It talks to the REST API over HTTP only (DESIGN §3); the wire types
//! it shares with the server come from `hotpatch-domain`, the rest is shown as the server's JSON.
//!
//! Every command prints its answer on stdout (`--output table` for people, `--output json` for
//! the server's JSON, pretty) and any failure as one line `error: …` on stderr, with an exit
//! code that tells what failed ([`CliError::exit_code`]).

#![forbid(unsafe_code)]

pub mod client;
pub mod commands;
pub mod error;
pub mod output;
pub mod progress;

use clap::Parser;

pub use client::Client;
pub use error::CliError;
pub use output::{Format, Out};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "hotpatchctl",
    version,
    about = "Operate a hotpatch control plane: fleet, assessments, releases, rollouts"
)]
pub struct Cli {
    /// Base URL of the API, e.g. https://hotpatch.example.com.
    #[arg(
        long,
        env = "HOTPATCH_URL",
        global = true,
        default_value = "http://127.0.0.1:8080",
        display_order = 900
    )]
    pub url: String,
    /// API token (Bearer). Prefer the environment variable: flags show up in process lists.
    #[arg(long, env = "HOTPATCH_TOKEN", global = true, hide_env_values = true, display_order = 901)]
    pub token: Option<String>,
    /// How to print answers: `table` for people, `json` for the server's JSON.
    #[arg(long, short = 'o', value_enum, global = true, default_value_t = Format::Table, display_order = 902)]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: commands::Command,
}

/// Runs the command line's command, printing its answer to `out`.
pub async fn run(cli: Cli, out: &mut Out) -> Result<(), CliError> {
    // Completions describe the command line only: no server, no token.
    if let commands::Command::Completions { shell } = cli.command {
        return commands::completions(shell, out);
    }
    let token = cli
        .token
        .ok_or_else(|| CliError::Input("no API token: set HOTPATCH_TOKEN (or pass --token)".to_owned()))?;
    let client = Client::new(&cli.url, &token)?;
    commands::run(cli.command, &client, out).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn assess_takes_machine_ids_or_a_selector_and_the_wait_flags() {
        let cli = Cli::try_parse_from([
            "hotpatchctl",
            "--url",
            "http://x",
            "assess",
            "--label",
            "env=prod",
            "--region",
            "uksouth",
            "--wait",
            "--timeout",
            "60",
        ])
        .unwrap();
        let commands::Command::Assess(a) = cli.command else { panic!("not assess") };
        assert!(a.machines.is_empty() && a.wait.wait && a.wait.timeout == 60);
        assert_eq!(a.selector.labels, vec![("env".to_owned(), "prod".to_owned())]);
        assert!(Cli::try_parse_from(["hotpatchctl", "assess", "--fleet", "--label", "a=b"]).is_err());
    }

    #[test]
    fn calendar_takes_its_year_or_the_feeds_subcommand_not_both() {
        let cli = Cli::try_parse_from(["hotpatchctl", "calendar", "--year", "2026"]).unwrap();
        let commands::Command::Calendar(c) = cli.command else { panic!("not calendar") };
        assert!(c.command.is_none() && c.year == Some(2026));
        let cli = Cli::try_parse_from(["hotpatchctl", "calendar", "feeds", "list"]).unwrap();
        let commands::Command::Calendar(c) = cli.command else { panic!("not calendar") };
        assert!(c.command.is_some());
        assert!(
            Cli::try_parse_from(["hotpatchctl", "calendar", "feeds", "create"]).is_err(),
            "names nothing"
        );
    }

    #[tokio::test]
    async fn completions_need_no_token_and_name_the_commands() {
        for shell in ["bash", "zsh", "fish", "powershell"] {
            let cli = Cli::try_parse_from(["hotpatchctl", "completions", shell]).unwrap();
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut out = Out::to_writer(Format::Table, Box::new(Shared(buf.clone())));
            run(Cli { token: None, ..cli }, &mut out).await.unwrap();
            let script = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
            assert!(script.contains("hotpatchctl") && script.contains("maintenance"), "{shell}: {script}");
        }
    }

    /// A writer the test reads back.
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
