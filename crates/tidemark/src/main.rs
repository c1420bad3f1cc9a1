//! The `tidemark` binary: `tidemark serve` runs the server; `tidemark check
//! rules FILE…` checks rule files as `promtool check rules` does; `tidemark
//! test rules FILE…` runs rule unit tests as `promtool test rules` does;
//! `tidemark import openmetrics FILE` and `tidemark import prometheus DIR`
//! write other systems' data into a data directory (see `docs/import.md`).

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
    /// Import data into a data directory (Tidemark must not be running on it).
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import an OpenMetrics text file with timestamps (the input of
    /// `promtool tsdb create-blocks-from openmetrics`) as blocks.
    Openmetrics {
        /// The OpenMetrics file (must end with `# EOF`).
        file: std::path::PathBuf,
        #[command(flatten)]
        common: ImportArgs,
        /// Time span of the blocks written, rounded down to 2h·3^k as
        /// promtool's --max-block-duration is.
        #[arg(long = "block-duration", value_name = "DURATION", default_value = "2h")]
        block_duration: String,
        /// Memory bound of the sample buffers (and series table), e.g. 512MiB.
        #[arg(long = "max-memory", value_name = "SIZE", default_value = "512MiB")]
        max_memory: String,
    },
    /// Import a Prometheus 2.x/3.x data directory (its blocks; its WAL with --wal).
    Prometheus {
        /// The Prometheus data directory (`--storage.tsdb.path`).
        dir: std::path::PathBuf,
        #[command(flatten)]
        common: ImportArgs,
        /// Also import the samples of its WAL (not yet in blocks).
        #[arg(long)]
        wal: bool,
    },
}

/// Flags every import takes.
#[derive(clap::Args)]
struct ImportArgs {
    /// The Tidemark data directory to write into.
    #[arg(long = "data-dir", value_name = "DIR", default_value = tidemark::config::DEFAULT_DATA_DIR)]
    data_dir: std::path::PathBuf,
    /// Do not read every imported sample back after writing.
    #[arg(long = "no-verify")]
    no_verify: bool,
    /// No progress bars and no summary.
    #[arg(long)]
    quiet: bool,
}

impl ImportArgs {
    fn options(&self) -> tidemark_import::summary::ImportOptions {
        let mut o = tidemark_import::summary::ImportOptions::new(&self.data_dir);
        o.verify = !self.no_verify;
        o.progress = !self.quiet;
        o
    }
}

/// Prints the summary (unless quiet) or the error; the exit code.
fn finish_import<E: std::fmt::Display>(
    quiet: bool,
    result: Result<tidemark_import::summary::ImportSummary, E>,
) -> std::process::ExitCode {
    match result {
        Ok(summary) => {
            if !quiet {
                println!("{summary}");
                println!(
                    "note: `tidemark serve` deletes blocks older than its --retention.time (default 15d) when it starts"
                );
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tidemark: import failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn import(cmd: ImportCommand) -> std::process::ExitCode {
    match cmd {
        ImportCommand::Openmetrics { file, common, block_duration, max_memory } => {
            let mut opts = common.options();
            let parsed = tidemark::config::parse_positive_duration("block-duration", &block_duration)
                .and_then(|d| Ok((d, tidemark::config::parse_size("max-memory", &max_memory)?)));
            match parsed {
                Ok((d, m)) => {
                    opts.block_duration = d;
                    opts.max_memory_bytes = m;
                }
                Err(e) => {
                    eprintln!("tidemark: {e}");
                    return std::process::ExitCode::from(2);
                }
            }
            finish_import(common.quiet, tidemark_import::openmetrics::import_file(&file, &opts))
        }
        ImportCommand::Prometheus { dir, common, wal } => {
            finish_import(common.quiet, tidemark_import::prometheus::import_dir(&dir, wal, &common.options()))
        }
    }
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
        Command::Import(cmd) => import(cmd),
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
