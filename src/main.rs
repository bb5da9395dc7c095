/// The codec allocates and frees buffers of a few bytes an element for every chunk; mimalloc
/// keeps freed pages for reuse where glibc's malloc returned them to the kernel (the filter
/// plugin's note, filter-plugin/src/lib.rs). The `mallopt` below still serves the C libraries'
/// allocations (HDF5, zstd's contexts).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `balerfile inspect x | head` should end quietly, as Unix tools do, not panic on the
    // closed pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The codec's buffers are a few bytes an element and short-lived, chunk after chunk. glibc
    // hands allocations over 128 KiB out as fresh mmaps, so every chunk paid the kernel to fault
    // in and zero its pages again; from the heap, freed pages are reused (GloSea4's 3-chunk
    // unpack: 91 -> 76 ms; a one-chunk file's first touches remain, nothing avoids those). 32 MiB is the most glibc accepts on 64-bit (some versions refuse
    // more); the trim threshold is raised only when that took, since setting it alone turns off
    // glibc's own adaptive threshold and would make every large allocation an mmap. Process-wide,
    // which is why only the program sets it, never the library or the filter plugin, whose host
    // owns its allocator.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocator parameters, before any thread starts; a refusal
    // (a return of 0) leaves glibc's defaults, which are correct, only slower.
    unsafe {
        let most = (4 << 20) * std::mem::size_of::<libc::c_long>() as libc::c_int;
        if libc::mallopt(libc::M_MMAP_THRESHOLD, most) == 1 {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * most);
        }
    }
    #[cfg(unix)]
    balerfile::atomic::remove_temporaries_on_signal();
    std::process::exit(balerfile_cli::run());
}

#[path = "cli/mod.rs"]
mod balerfile_cli;
