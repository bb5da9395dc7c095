fn main() {
    // `balerfile inspect x | head` should end quietly, as Unix tools do, not panic on the
    // closed pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(balerfile_cli::run());
}

#[path = "cli/mod.rs"]
mod balerfile_cli;
