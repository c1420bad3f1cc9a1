//! The `tidemark` binary.

fn main() {
    eprintln!("tidemark: the server is being assembled (issue 4)");
    std::process::exit(2);
}
