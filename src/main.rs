//! The `drover` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = drover::cli::Cli::parse();
    drover::cli::run(cli)
}
