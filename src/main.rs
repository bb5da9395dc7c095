fn main() {
    std::process::exit(balerfile_cli::run());
}

#[path = "cli/mod.rs"]
mod balerfile_cli;
