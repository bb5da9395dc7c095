fn main() {
    // `balerfile inspect x | head` should end quietly, as Unix tools do, not panic on the
    // closed pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The codec's buffers are a few bytes an element and short-lived, chunk after chunk. glibc
    // hands allocations this large out as fresh mmaps, so every chunk paid the kernel to fault in
    // and zero its pages again (a quarter of `pack`'s time on a 1.7 MB field); from the heap,
    // freed pages are reused. Process-wide, which is why only the program sets it, never the
    // library or the filter plugin, whose host owns its allocator.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters; it is called before any thread
    // starts, and its failure (a return of 0) leaves the defaults, which are correct anyway.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    std::process::exit(balerfile_cli::run());
}

#[path = "cli/mod.rs"]
mod balerfile_cli;
