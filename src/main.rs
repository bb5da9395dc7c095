/// The codec allocates and frees buffers of a few bytes an element for every chunk; mimalloc
/// keeps freed pages for reuse where glibc's malloc returned them to the kernel (the filter
/// plugin's note, filter-plugin/src/lib.rs). The `mallopt` below still serves the C libraries'
/// allocations (HDF5, zstd's contexts).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option API (its `mimalloc.h`), which the `mimalloc` crate links but does not
// expose without its `extended` feature.
unsafe extern "C" {
    fn mi_option_get(option: libc::c_int) -> libc::c_long;
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

/// `mi_option_purge_delay`'s place in mimalloc v3's `mi_option_t` (libmimalloc-sys 0.1.49, as
/// Cargo.lock pins it), and the delay it starts at there (ms).
const MI_OPTION_PURGE_DELAY: libc::c_int = 15;
const MI_PURGE_DELAY_DEFAULT: libc::c_long = 1000;

/// Keeps the pages mimalloc has for the run: a `pack` on two threads had pages it had freed
/// returned to the kernel (purged) and faulted in again, zeroed, on the next chunk, and spent
/// 0.42-0.77 s of 0.90-1.25 s in the kernel (GloSea4 x20 at 1e-2, five alternated runs; with
/// `MIMALLOC_PURGE_DELAY=-1` 0.14-0.26 s of 0.76-0.91; the README's runs of this build alike).
/// A run of the CLI is short and its peak is what it holds either way. Only where the option
/// reads as this mimalloc's default: another version's numbering, or a user's
/// `MIMALLOC_PURGE_DELAY` of anything but that default, is left alone.
fn keep_freed_pages() {
    // SAFETY: both calls read or write one integer of mimalloc's option table, after checking
    // the index against the table's size (v3's options.c); the write is a plain store, made
    // here at the start of `main`, before any thread that could read it concurrently exists.
    // Purging reads the option each time it runs, so it takes effect from the first chunk.
    unsafe {
        if mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT {
            mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

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
    keep_freed_pages();
    #[cfg(unix)]
    balerfile::atomic::remove_temporaries_on_signal();
    std::process::exit(balerfile_cli::run());
}

#[path = "cli/mod.rs"]
mod balerfile_cli;
