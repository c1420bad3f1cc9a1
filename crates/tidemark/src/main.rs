//! The `tidemark` binary: `tidemark serve` runs the server; `tidemark check
//! rules FILE…` checks rule files as `promtool check rules` does; `tidemark
//! test rules FILE…` runs rule unit tests as `promtool test rules` does.

use clap::{Parser, Subcommand};
use tidemark::config::{ServeArgs, ServeConfig};

/// Tidemark: a Prometheus-compatible time-series database.
#[derive(Parser)]
#[command(name = "tidemark", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the serve flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Accept remote write and serve the Prometheus HTTP API.
    Serve(ServeArgs),
    /// Check files without running anything.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run tests.
    #[command(subcommand)]
    Test(TestCommand),
}

#[derive(Subcommand)]
enum TestCommand {
    /// Unit-test rule files, in the format and with the output of
    /// `promtool test rules`; exits 1 if any test fails.
    Rules {
        /// The test files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check rule files as `promtool check rules` does: exit 0 if all are valid, 1 otherwise.
    Rules {
        /// The rule files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Test(TestCommand::Rules { files }) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            match tidemark_rules::unittest::test_rules(&files, &mut out, &mut err) {
                Ok(true) => std::process::ExitCode::SUCCESS,
                Ok(false) => std::process::ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("tidemark: writing the test report: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Check(CheckCommand::Rules { files }) => {
            let ok = tidemark_rules::check::check_rules(
                &files,
                &tidemark::rules::check_template,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Command::Serve(args) => {
            let config = match ServeConfig::resolve(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tidemark: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logging(&config.log_filter);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("tidemark: cannot start the async runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(tidemark::server::serve(config, tidemark::server::shutdown_signal()));
            runtime.shutdown_timeout(tidemark::server::SHUTDOWN_GRACE);
            match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "tidemark stopped with an error");
                    eprintln!("tidemark: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("tidemark: invalid --log.level {filter:?} ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
