//! The `crmsync` command: parse arguments, run the subcommand, map the outcome to an exit code
//! (0 ok, 1 finished with record failures, 2 config or usage error).

mod cli;
mod demo;
mod exit;
mod init;
mod ops;
mod progress;
mod serve;
mod webhook;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_tracing(args.verbose, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            progress::error_line(&format!("{e:#}"));
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// Logs go to stderr: text (coloured only when stderr is a terminal, so a pipe or a journal
/// gets no escape codes), or JSON lines for a log collector, where info is the default level
/// (a service's log is read later, not watched).
fn init_tracing(verbose: u8, format: cli::LogFormat) {
    use std::io::IsTerminal;
    let json = format == cli::LogFormat::Json;
    progress::set_json_logs(json);
    let default = match (verbose, json) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info,sqlx=warn",
        _ => "debug,sqlx=info,hyper=info,reqwest=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
