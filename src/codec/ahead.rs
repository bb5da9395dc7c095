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
//!
//! What crosses from one core to the other is the cost: every cache line of the ring the writer
//! stores to is one the reader's core holds, and its stores wait for the line. A walk's values
//! are small (a residual in bins), so the ring holds 16 bits a value and a value that does not
//! fit goes beside it in a second ring (`WIDE`): a quarter of the lines. On the NCEP winds'
//! chunk at rel 1e-2 (126144 values), with 64-bit slots the writer's decoding took 0.49 ms, and
//! 0.31 ms with the copy into the ring left out; the chunk decoded in 0.55-0.59 ms, and in
//! 0.40-0.41 ms with 16-bit slots. Each side also reads the other's counter only when the copy
//! it keeps says it must wait.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Values the ring holds: 32 KiB of slots, in L1 beside the walk's rows, and far enough ahead
/// that neither side waits on the other's jitter.
const RING: usize = 1 << 14;
/// Values the writer decodes before publishing them; `RING` is a multiple, so a batch never
/// wraps around the ring's end.
const BATCH: usize = 256;
/// A slot holding this stands for the next value of the wide ring.
const WIDE: u16 = u16::MAX;
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

/// A counter on a cache line of its own: the side that stores it does not take the line the
/// other side's counter is on from that side's core.
#[repr(align(128))]
struct Counter(AtomicUsize);

pub struct Ring {
    /// Written by the writer between `taken + RING` and what it has published, read by the
    /// reader between `taken` and `written`: the two counters hand each slot from one side to
    /// the other, so no slot is ever written and read at once (see `write` and `Reader::fill`).
    slots: Box<[UnsafeCell<u16>]>,
    /// The values of the slots that hold `WIDE`, in order: the k-th such slot's value is at
    /// `k % RING`. At most `RING` slots are written and not yet taken, so at most `RING` wide
    /// values are: the writer's k-th never lands on one the reader has still to read (`write`).
    wide: Box<[UnsafeCell<u64>]>,
    n: usize,
    written: Counter,
    taken: Counter,
    /// The reader is gone: the writer may stop.
    closed: AtomicBool,
    /// The writer has stopped (at the end, or early).
    done: AtomicBool,
    /// The decoder's `finish`, once it has decoded all `n`.
    verdict: Mutex<Option<Result<(), String>>>,
}

// SAFETY: the slots and wide values are the only state not behind an atomic or a Mutex. Only a
// `Writer` writes them and only a `Reader` reads them; `split` (taking the ring mutably, so no
// pair split before is alive) makes one of each and starts the counters afresh; and the two
// hand the slots over through `written` and `taken` (Release/Acquire) so that no slot, and no
// wide value, is touched by both at once.
unsafe impl Sync for Ring {}

impl Ring {
    pub fn new(n: usize) -> Ring {
        Ring {
            slots: (0..RING).map(|_| UnsafeCell::new(0)).collect(),
            wide: (0..RING).map(|_| UnsafeCell::new(0)).collect(),
            n,
            written: Counter(AtomicUsize::new(0)),
            taken: Counter(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            verdict: Mutex::new(None),
        }
    }

    /// The ring's one writer and one reader.
    pub fn split(&mut self) -> (Writer<'_>, Reader<'_>) {
        // A pair split before has gone (the borrow says so); the new one starts from nothing.
        *self.written.0.get_mut() = 0;
        *self.taken.0.get_mut() = 0;
        *self.closed.get_mut() = false;
        *self.done.get_mut() = false;
        *self.verdict.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        let ring = &*self;
        (Writer { ring }, Reader { ring, taken: 0, written: 0, wide: 0, over: false })
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
        // What the reader had taken when last asked: it only grows, so room it showed is there.
        let (mut w, mut wide, mut taken) = (0, 0usize, 0);
        while w < ring.n {
            let k = BATCH.min(ring.n - w);
            dec.fill(&mut batch[..k]);
            let mut spins = 0;
            while w + k - taken > RING {
                taken = ring.taken.0.load(Ordering::Acquire);
                if w + k - taken <= RING {
                    break;
                }
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
            // ring; the pointer comes from the whole slice, and UnsafeCell<u16> has u16's layout.
            let part = unsafe { std::slice::from_raw_parts_mut(UnsafeCell::raw_get(ring.slots.as_ptr().add(at)), k) };
            for (slot, &v) in part.iter_mut().zip(&batch[..k]) {
                *slot = if v < WIDE as u64 {
                    v as u16
                } else {
                    // SAFETY: this value's slot is the `wide`-th to hold WIDE; the one before it
                    // at `wide % RING` was the (wide - RING)-th, whose slot lies at least RING
                    // slots back (the RING + 1 slots from it to this one are distinct), so
                    // before `taken` above (this slot is under taken + RING): the
                    // reader read its value before publishing `taken` past it. It reads this one
                    // only after `written` below. The index is inside the ring.
                    unsafe { *UnsafeCell::raw_get(ring.wide.as_ptr().add(wide & (RING - 1))) = v };
                    wide += 1;
                    WIDE
                };
            }
            w += k;
            ring.written.0.store(w, Ordering::Release);
        }
        *ring.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(dec.finish());
    }
}

/// The reader's side: the coder's `fill`, `remaining` and `finish` (`Fill`).
pub struct Reader<'r> {
    ring: &'r Ring,
    taken: usize,
    /// What the writer had published when last asked.
    written: usize,
    /// Wide values read.
    wide: usize,
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
            if self.written == self.taken {
                self.written = ring.written.0.load(Ordering::Acquire);
                if self.written == self.taken {
                    // `done` is read before `written` again: a writer that ended has published all.
                    if ring.done.load(Ordering::Acquire) && ring.written.0.load(Ordering::Acquire) == self.taken {
                        out[j..].fill(0);
                        self.over = true;
                        return;
                    }
                    wait(&mut spins);
                    continue;
                }
            }
            let at = self.taken & (RING - 1);
            // A run up to the ring's end; the rest comes round the loop.
            let m = (self.written - self.taken).min(out.len() - j).min(RING - at);
            // SAFETY: slots taken..written were published by the writer's Release store of
            // `written` (read above with Acquire), and it writes none of them again until
            // `taken` (below, Release) passes them. The m slots from `at` stay inside the ring.
            let run = unsafe { std::slice::from_raw_parts(UnsafeCell::raw_get(ring.slots.as_ptr().add(at)) as *const u16, m) };
            let part = &mut out[j..j + m];
            // Widened in a loop without a branch, then the rare WIDE slots looked up.
            part.iter_mut().zip(run).for_each(|(o, &s)| *o = s as u64);
            if run.contains(&WIDE) {
                for (o, &s) in part.iter_mut().zip(run) {
                    if s == WIDE {
                        // SAFETY: the writer stored this value before publishing its slot
                        // (Release, read above with Acquire), and stores the one after it at
                        // this index only once `taken` has passed the slot (see `write`).
                        *o = unsafe { *UnsafeCell::raw_get(ring.wide.as_ptr().add(self.wide & (RING - 1))) };
                        self.wide += 1;
                    }
                }
            }
            self.taken += m;
            j += m;
            ring.taken.0.store(self.taken, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A coder handing out a list's values, as a slice at a time as asked.
    struct List {
        values: Vec<u64>,
        at: usize,
        verdict: Result<(), String>,
    }

    impl Fill for List {
        fn remaining(&self) -> usize {
            self.values.len().saturating_sub(self.at)
        }
        fn fill(&mut self, out: &mut [u64]) {
            for o in out {
                *o = self.values.get(self.at).copied().unwrap_or(0);
                self.at += 1;
            }
        }
        fn finish(&self) -> Result<(), String> {
            self.verdict.clone()
        }
    }

    /// Values narrow and wide in every mix: alone, in runs longer than the ring (so the wide
    /// values' ring comes round many times), and at the edges of a slot (`WIDE` itself, the
    /// values either side of it, 0 and u64::MAX).
    fn values() -> Vec<u64> {
        let mut r = crate::codec::xorshift(3);
        let edges = [0, 1, WIDE as u64 - 1, WIDE as u64, WIDE as u64 + 1, u64::MAX, 1 << 40];
        let mut v = Vec::new();
        for part in 0..7 {
            for i in 0..RING + 777 {
                v.push(match part {
                    0 => r() % 40,
                    1 => edges[(r() % edges.len() as u64) as usize],
                    2 => r(),
                    3 if i % 3 == 0 => r(),
                    4 => WIDE as u64,
                    _ => r() % (WIDE as u64 + 2),
                });
            }
        }
        v
    }

    /// The reader gets the writer's values in order, taking them however many at a time, across
    /// the ring's end and the wide ring's, with zeros and an error past the end.
    #[test]
    fn reader_gets_every_value_the_coder_gave() {
        let values = values();
        for take in [1usize, 7, BATCH, 1000, RING + 5] {
            let mut ring = Ring::new(values.len());
            let (writer, mut reader) = ring.split();
            let dec = List { values: values.clone(), at: 0, verdict: Ok(()) };
            std::thread::scope(|s| {
                s.spawn(|| writer.write(dec));
                let mut got = Vec::new();
                while reader.remaining() > 0 {
                    let mut out = vec![0; take.min(reader.remaining())];
                    reader.fill(&mut out);
                    got.extend(out);
                }
                assert!(got == values, "taken {take} at a time");
                assert_eq!(reader.finish(), Ok(()));
                let mut past = [7u64; 3];
                reader.fill(&mut past);
                assert_eq!(past, [0; 3]);
                assert!(reader.finish().is_err(), "values asked past the end");
            });
        }
    }

    /// A coder that fails is the reader's error; a reader that goes early lets the writer stop.
    #[test]
    fn failures_reach_the_reader_and_nobody_waits() {
        let values = values();
        let mut ring = Ring::new(values.len());
        {
            let (writer, mut reader) = ring.split();
            let dec = List { values: values.clone(), at: 0, verdict: Err("damaged".into()) };
            std::thread::scope(|s| {
                s.spawn(|| writer.write(dec));
                let mut all = vec![0; values.len()];
                reader.fill(&mut all);
                assert!(all == values);
                assert_eq!(reader.finish(), Err("damaged".into()));
            });
        }
        let (writer, mut reader) = ring.split();
        let dec = List { values: values.clone(), at: 0, verdict: Ok(()) };
        std::thread::scope(|s| {
            let w = s.spawn(|| writer.write(dec));
            let mut few = [0; 10];
            reader.fill(&mut few);
            assert!(few[..] == values[..10]);
            drop(reader);
            // The scope would wait here for ever if the writer did not stop on a full ring.
            w.join().unwrap();
        });
    }
}
