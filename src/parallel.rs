//! Work over indices on scoped threads: the one helper a chunk's walk trials (`codec`) and a
//! filtered chunk's pieces (`h5filter`) share. Threads live for the call only, so no pool
//! outlives it and a process that forks afterwards (Python's multiprocessing, Dask) hands its
//! children nothing half-alive.

/// The cores this process may use, asked once: the standard library reads the cgroup's quota
/// from /proc and /sys on every call (23 us measured), and the filter asks for every chunk.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f(i)` for every i in 0..n, in order, on up to `threads` threads, each taking a contiguous
/// run of indices (this thread the first). A thread the system refuses (a process limit, many
/// MPI ranks a node) leaves its run to this one: slower, never an error. A panic in a run is
/// re-raised here, where the filter's C boundary catches it.
pub fn map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let run = move |t: usize| (t * n / threads..(t + 1) * n / threads).map(f).collect::<Vec<T>>();
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|t| (t, std::thread::Builder::new().spawn_scoped(s, move || run(t)).ok())).collect();
        let mut out = run(0);
        for (t, h) in handles {
            out.extend(match h {
                Some(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                None => run(t),
            });
        }
        out
    })
}

/// `(a(), b())`, `b` on a second scoped thread where `threads` allows one (and the system
/// gives it), else after `a` on this one.
pub fn join<A: Send, B: Send>(threads: usize, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if threads <= 1 {
        return (a(), b());
    }
    // The closure waits in a cell, so a refused spawn leaves it here to call.
    let b = std::sync::Mutex::new(Some(b));
    let take = || b.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|s| {
        let h = std::thread::Builder::new().spawn_scoped(s, || take().map(|b| b())).ok();
        let x = a();
        let y = h.and_then(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).or_else(|| take().map(|b| b()));
        (x, y.expect("b ran on one thread or the other"))
    })
}
