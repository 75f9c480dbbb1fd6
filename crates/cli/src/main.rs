//! The `ripplekv` binary. `ripplekv serve` (or just `ripplekv`) runs the server with
//! embedded durable storage; `ripplekv get|set|patch|del|range|incr|watch|token` talk
//! to a running server; `ripplekv backup|restore|export|import` move data in and out.
//! See `ripplekv --help`.
//!
//! This file only parses the command line and hands over: [`settings`] layers
//! defaults, the TOML file, environment and flags into validated settings, [`secrets`]
//! provides an API key and a token secret when none are configured, [`serve`] runs the
//! server, [`commands`] are the client subcommands, [`data`] the backup and export
//! commands, and [`bench`] the load generator.

mod bench;
mod commands;
mod data;
mod rest;
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
    Serve(Box<settings::ServeArgs>),
    #[command(flatten)]
    Client(commands::ClientCommand),
    #[command(flatten)]
    Data(data::DataCommand),
    /// Measure throughput and latency against a running server.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Client(command)) => commands::main(command),
        Some(Command::Bench(args)) => bench::main(args),
        Some(Command::Data(command)) => report(data::main(command)),
        Some(Command::Serve(args)) => report(serve::main(*args)),
        None => report(serve::main(cli.serve)),
    }
}

/// Exit codes as for the client subcommands: a refusal of the credentials (4) or an
/// unreachable server (3) are told apart from other failures (1).
fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    let Err(err) = result else {
        return std::process::ExitCode::SUCCESS;
    };
    match err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ripplekv_client::Error>())
    {
        Some(client_error @ ripplekv_client::Error::Unauthorized { .. }) => {
            commands::fail(client_error)
        }
        Some(ripplekv_client::Error::Connect(_)) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(3)
        }
        _ => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
