//! `awfdrs`: every worker in one process (`up`), one worker (`worker`), the
//! demo, the benchmark and the operator's commands.

mod admin;
mod bench;
mod breakers;
mod callbacks;
mod channels;
mod cli;
mod connect;
mod demo;
mod dlq;
mod events;
mod incidents;
mod remedy;
mod retention;
mod rules;
mod secrets;
mod table;
mod tenants;
mod up;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
