//! `hotpatchctl`: parse the command line, run the command, turn a failure into one `error:` line
//! on stderr and its exit code.

use std::process::ExitCode;

use clap::Parser;
use hotpatch_cli::{run, Cli, CliError, Out};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Out::stdout(cli.output);
    match run(cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`hotpatchctl … | head`): nothing left to say.
        Err(CliError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
