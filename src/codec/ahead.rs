//! A coder's stream (`rans`, `ac`) decoded on a second thread, a ring ahead of its reader.
//! Reading an interpolation-coded field, the coder takes more than half the time and the walk
//! the rest, and one waits on the other only through the ring: on two cores they overlap. The
//! bytes and what they decode to are the same as on one thread; only who does the work changes.
//!
//! One writer and one reader share the ring through two counters: the writer publishes what it
//! has written (release), the reader what it has taken (release), and each reads the other's
//! (acquire) before touching the slots between. Neither side can panic or be left waiting: a
//! reader that goes away (its walk is done, or fell back to f64) lets the writer stop, and a
//! writer that stops early leaves the reader zeros and an error.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Values the ring holds: 128 KiB, in L2 beside the coder's tables and the walk's rows, and
/// far enough ahead that neither side waits on the other's jitter.
const RING: usize = 1 << 14;
/// Values the writer decodes before publishing them; `RING` is a multiple, so a batch never
/// wraps around the ring's end.
const BATCH: usize = 256;
/// Blocks shorter than this decode on the caller's thread: a thread costs tens of
/// microseconds, a block of 2^16 values a few hundred.
pub const MIN_VALUES: usize = 1 << 16;

/// A coder that hands out its block's values in order, a slice at a time (`rans::Decoder`,
/// `ac::Stream`): past the end, or once the stream fails, zeros, and `finish` says so.
pub trait Fill {
    fn remaining(&self) -> usize;
    fn fill(&mut self, out: &mut [u64]);
    fn finish(&self) -> Result<(), String>;
}

pub struct Ring {
    /// Written by the writer between `taken + RING` and what it has published, read by the
    /// reader between `taken` and `written`: the two counters hand each slot from one side to
    /// the other, so no slot is ever written and read at once (see `write` and `Reader::fill`).
    slots: Box<[UnsafeCell<u64>]>,
    n: usize,
    written: AtomicUsize,
    taken: AtomicUsize,
    /// The reader is gone: the writer may stop.
    closed: AtomicBool,
    /// The writer has stopped (at the end, or early).
    done: AtomicBool,
    /// The decoder's `finish`, once it has decoded all `n`.
    verdict: Mutex<Option<Result<(), String>>>,
}

// SAFETY: the slots are the only state not behind an atomic or a Mutex. Only a `Writer` writes
// them and only a `Reader` reads them; `split` (taking the ring mutably, so no pair split before
// is alive) makes one of each and starts the counters afresh; and the two hand the slots over
// through `written` and `taken` (Release/Acquire) so that no slot is touched by both at once.
unsafe impl Sync for Ring {}

impl Ring {
    pub fn new(n: usize) -> Ring {
        Ring {
            slots: (0..RING).map(|_| UnsafeCell::new(0)).collect(),
            n,
            written: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            verdict: Mutex::new(None),
        }
    }

    /// The ring's one writer and one reader.
    pub fn split(&mut self) -> (Writer<'_>, Reader<'_>) {
        // A pair split before has gone (the borrow says so); the new one starts from nothing.
        *self.written.get_mut() = 0;
        *self.taken.get_mut() = 0;
        *self.closed.get_mut() = false;
        *self.done.get_mut() = false;
        *self.verdict.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        let ring = &*self;
        (Writer { ring }, Reader { ring, taken: 0, over: false })
    }
}

/// The writer's side, to run on its own thread.
pub struct Writer<'r> {
    ring: &'r Ring,
}

impl Writer<'_> {
    /// Decodes the block's `n` values into the ring, waiting for room.
    pub fn write(self, mut dec: impl Fill) {
        let ring = self.ring;
        struct Done<'r>(&'r Ring);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.done.store(true, Ordering::Release);
            }
        }
        let _done = Done(ring);
        // Decoded here, then copied: decoding straight into the ring's slots stalls the coder's
        // chain on stores to lines the reader's core holds.
        let mut batch = [0u64; BATCH];
        let mut w = 0;
        while w < ring.n {
            let k = BATCH.min(ring.n - w);
            dec.fill(&mut batch[..k]);
            let mut spins = 0;
            while w + k - ring.taken.load(Ordering::Acquire) > RING {
                if ring.closed.load(Ordering::Acquire) {
                    return;
                }
                wait(&mut spins);
            }
            let at = w & (RING - 1);
            debug_assert!(at + k <= RING);
            // SAFETY: w + k <= taken + RING, so the reader has taken every value these k slots
            // held (the Acquire load of `taken` orders its reads of them before these writes),
            // and it reads none of them until `written` says so below (Release). `at` is a
            // multiple of BATCH and RING of BATCH, so the k slots are contiguous and inside the
            // ring; the pointer comes from the whole slice, and UnsafeCell<u64> has u64's layout.
            let part = unsafe { std::slice::from_raw_parts_mut(UnsafeCell::raw_get(ring.slots.as_ptr().add(at)), k) };
            part.copy_from_slice(&batch[..k]);
            w += k;
            ring.written.store(w, Ordering::Release);
        }
        *ring.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(dec.finish());
    }
}

/// The reader's side: the coder's `fill`, `remaining` and `finish` (`Fill`).
pub struct Reader<'r> {
    ring: &'r Ring,
    taken: usize,
    /// More values were asked for than the block holds, or the writer stopped short.
    over: bool,
}

impl Reader<'_> {
    pub fn remaining(&self) -> usize {
        self.ring.n.saturating_sub(self.taken)
    }

    /// The next `out.len()` values; zeros past the block's end (and `finish` says so).
    pub fn fill(&mut self, out: &mut [u64]) {
        let ring = self.ring;
        let mut j = 0;
        let mut spins = 0;
        while j < out.len() {
            if self.taken >= ring.n {
                out[j..].fill(0);
                self.over = true;
                return;
            }
            let w = ring.written.load(Ordering::Acquire);
            if w == self.taken {
                // `done` is read before `written` again: a writer that ended has published all.
                if ring.done.load(Ordering::Acquire) && ring.written.load(Ordering::Acquire) == self.taken {
                    out[j..].fill(0);
                    self.over = true;
                    return;
                }
                wait(&mut spins);
                continue;
            }
            let at = self.taken & (RING - 1);
            // A run up to the ring's end; the rest comes round the loop.
            let m = (w - self.taken).min(out.len() - j).min(RING - at);
            // SAFETY: slots taken..w were published by the writer's Release store of `written`
            // (read above with Acquire), and it writes none of them again until `taken` (below,
            // Release) passes them. The m slots from `at` stay inside the ring.
            let run = unsafe { std::slice::from_raw_parts(UnsafeCell::raw_get(ring.slots.as_ptr().add(at)) as *const u64, m) };
            out[j..j + m].copy_from_slice(run);
            self.taken += m;
            j += m;
            ring.taken.store(self.taken, Ordering::Release);
        }
    }

    /// Whether every value was read and the stream ended where it should.
    pub fn finish(&self) -> Result<(), String> {
        if self.over || self.taken != self.ring.n {
            return Err(format!("{} of {} coded values read", self.taken, self.ring.n));
        }
        let mut spins = 0;
        while !self.ring.done.load(Ordering::Acquire) {
            wait(&mut spins);
        }
        self.ring.verdict.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| Err("a coded stream's decoder stopped early".into()))
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.ring.closed.store(true, Ordering::Release);
    }
}

/// Spins briefly (the other side is usually a batch away), then gives the core up: on a
/// machine with fewer free cores than threads the other side needs it.
fn wait(spins: &mut u32) {
    if *spins < 128 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
