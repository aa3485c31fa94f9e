//! The `cairn` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    cairn::cli::main(cairn::cli::Cli::parse())
}
