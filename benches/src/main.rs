//! `tidemark-bench`: measurement tools that need more than criterion.
//!
//! ```text
//! cargo run --release -p tidemark-bench -- compare            # Tidemark vs Prometheus vs VictoriaMetrics
//! cargo run --release -p tidemark-bench -- compare --help
//! cargo run --release -p tidemark-bench -- compare-rules      # 1,000 rules: Tidemark vs Prometheus
//! ```

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tidemark-bench", about = "Tidemark's side-by-side measurements")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send the same remote-write load to Tidemark, Prometheus and
    /// VictoriaMetrics (127.0.0.1 only, one at a time, fresh data dirs) and
    /// compare ingestion rate, CPU and memory per sample, bytes per sample
    /// on disk and query latency; prints tables and writes JSON.
    Compare(tidemark_bench::compare::CompareArgs),
    /// Evaluate 1,000 recording and alerting rules in 50 groups over the
    /// same remote-written fleet in Tidemark and Prometheus, one at a time,
    /// and compare per-group evaluation time, CPU and memory of the rule
    /// phase, and the recorded samples.
    CompareRules(tidemark_bench::compare::rules::CompareRulesArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare(args) => match tidemark_bench::compare::run(&args) {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::CompareRules(args) => match tidemark_bench::compare::rules::run(&args) {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare-rules: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
