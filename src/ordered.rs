//! Items read in order on this thread, worked on a pool, and taken back in order on this
//! thread: the loop of `pack` (read rows, code a chunk, write it) and `unpack` (decode a chunk,
//! write its rows). A batch at a time (read all, work all, write all) left the pool idle while
//! this thread read and wrote, and all but one worker idle while a batch's slowest chunk
//! finished; here the next items are read while earlier ones are worked, and each is taken back
//! as soon as those before it are.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;

/// For each `i` in `0..count`: `read(i)` here, in order; `work(i, item)` on `pool`;
/// `write(i, out)` here, in order. At most `window` items are read and not yet written, so
/// that many inputs (and outputs waiting for one before them) are held at most. The first
/// error of `read` or `write` ends the loop and is returned once the items already on the pool
/// have finished; a panic in `work` is raised again here.
///
/// This thread must not be one of `pool`'s workers: it waits on the workers while it holds
/// items back.
pub fn in_order<I: Send, O: Send, E>(
    pool: &rayon::ThreadPool,
    count: usize,
    window: usize,
    mut read: impl FnMut(usize) -> Result<I, E>,
    work: impl Fn(usize, I) -> O + Sync,
    mut write: impl FnMut(usize, O) -> Result<(), E>,
) -> Result<(), E> {
    let window = window.max(1);
    let (tx, rx) = mpsc::channel::<(usize, std::thread::Result<O>)>();
    let work = &work;
    pool.in_place_scope(|scope| {
        // Items worked but not yet written: an item can finish before one read ahead of it.
        let mut done = BTreeMap::new();
        let (mut read_to, mut written) = (0, 0);
        while written < count {
            while read_to < count && read_to - written < window {
                let item = read(read_to)?;
                let (tx, i) = (tx.clone(), read_to);
                // Every job sends exactly once, its panic caught and sent as its result, so the
                // wait below always ends.
                scope.spawn(move |_| {
                    let _ = tx.send((i, catch_unwind(AssertUnwindSafe(|| work(i, item)))));
                });
                read_to += 1;
            }
            let out = loop {
                if let Some(out) = done.remove(&written) {
                    break out;
                }
                // `tx` is held here, so the channel stays open; item `written` is on the pool.
                let (i, out) = rx.recv().expect("a job on the pool sends its result");
                done.insert(i, out);
            };
            write(written, out.unwrap_or_else(|panic| resume_unwind(panic)))?;
            written += 1;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    #[test]
    fn writes_every_item_in_order_whatever_order_they_finish_in() {
        for threads in [1, 2, 4] {
            for window in [1, 3, 8] {
                let (reads, writes) = (std::cell::RefCell::new(Vec::new()), std::cell::RefCell::new(Vec::new()));
                let r = in_order(
                    &pool(threads),
                    40,
                    window,
                    |i| {
                        reads.borrow_mut().push(i);
                        // Never more than `window` read and not written.
                        assert!(reads.borrow().len() - writes.borrow().len() <= window);
                        Ok::<_, String>(i * 10)
                    },
                    // Early items take longest, so later ones finish first.
                    |i, x| {
                        std::thread::sleep(std::time::Duration::from_micros(((40 - i) * 50) as u64));
                        (i, x + 1)
                    },
                    |i, (j, y)| {
                        assert_eq!((i, j, y), (i, i, i * 10 + 1));
                        writes.borrow_mut().push(i);
                        Ok(())
                    },
                );
                assert!(r.is_ok());
                assert_eq!(reads.into_inner(), (0..40).collect::<Vec<_>>());
                assert_eq!(writes.into_inner(), (0..40).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn an_error_stops_reading_and_a_panic_is_raised_here() {
        let mut reads = 0;
        let r = in_order(&pool(2), 100, 4, |i| if i == 6 { Err(format!("row {i}")) } else { reads += 1; Ok(i) }, |_, x| x, |_, _| Ok(()));
        assert_eq!(r, Err("row 6".to_string()));
        assert_eq!(reads, 6);
        let mut written = Vec::new();
        let r = in_order(&pool(2), 100, 4, Ok::<_, String>, |_, x| x, |i, _| if i == 3 { Err("disk full".into()) } else { written.push(i); Ok(()) });
        assert_eq!(r, Err("disk full".to_string()));
        assert_eq!(written, [0, 1, 2]);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _ = in_order(&pool(2), 10, 4, Ok::<_, String>, |i, x| if i == 5 { panic!("job 5") } else { x }, |_, _| Ok(()));
        }));
        let msg = caught.expect_err("the job's panic reaches the caller");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"job 5"));
    }
}
