//! The `ripplekv` binary. `ripplekv serve` (or just `ripplekv`) runs the server with
//! embedded durable storage; see `ripplekv --help` for the flags.
//!
//! This file only parses the command line and hands over: [`settings`] layers
//! defaults, the TOML file, environment and flags into validated settings, [`secrets`]
//! provides an API key and a token secret when none are configured, and [`serve`] runs
//! the server.

mod secrets;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

/// A real-time key-value store that speaks the HPKV WebSocket and REST protocol.
#[derive(Debug, Parser)]
#[command(name = "ripplekv", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `serve`, so a bare `ripplekv` runs the server.
    #[command(flatten)]
    serve: settings::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(settings::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    serve::main(args)
}
