//! Output files appear whole or not at all: everything is written to a temporary name in the
//! destination folder and renamed over the destination only when complete (a character device
//! or a FIFO is written into, from a temporary in the temporary folder). A failed or interrupted
//! write leaves the destination untouched: the command removes the temporary on SIGINT, SIGTERM
//! and SIGHUP, and a killed process's is removed by the next write to the same name.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub struct AtomicOutput {
    dest: PathBuf,
    tmp: PathBuf,
    /// Where `tmp` is registered for removal on a fatal signal (`remove_temporaries_on_signal`).
    slot: Option<usize>,
    /// The destination is a character device or a FIFO (`-o /dev/null`, a pipe another program
    /// reads): the finished file is copied into it, not renamed over it, which would put a
    /// regular file in the device's or the pipe's place.
    stream: bool,
    committed: bool,
}

/// What kind of thing an output path names, following symbolic links.
enum Existing {
    Nothing,
    File,
    Dir,
    /// A character device or a FIFO: written into.
    Stream,
    Other(&'static str),
}

fn existing(dest: &Path) -> Existing {
    let Ok(m) = std::fs::metadata(dest) else { return Existing::Nothing };
    let t = m.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_fifo() {
            return Existing::Stream;
        }
        if t.is_block_device() {
            return Existing::Other("a block device");
        }
        if t.is_socket() {
            return Existing::Other("a socket");
        }
    }
    if t.is_dir() {
        Existing::Dir
    } else if t.is_file() {
        Existing::File
    } else {
        Existing::Other("not a regular file")
    }
}

/// Refuses an output that is the input file (by another name too: `./x`, an absolute path, a
/// symbolic or hard link): the finished output is renamed over it, and the input would be
/// lost with nothing left but the lossy copy.
pub fn check_not_input(input: &Path, output: &Path) -> Result<()> {
    let (Ok(i), Ok(o)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(());
    };
    #[cfg(unix)]
    let same = {
        use std::os::unix::fs::MetadataExt;
        i.dev() == o.dev() && i.ino() == o.ino()
    };
    #[cfg(not(unix))]
    let same = {
        let _ = (i, o);
        input.canonicalize().ok().is_some_and(|i| output.canonicalize().ok() == Some(i))
    };
    if same {
        return Err(Error::Usage(format!("{}: the output must not be the input ({})", output.display(), input.display())));
    }
    Ok(())
}

impl AtomicOutput {
    /// Reserves a temporary path beside `dest`; the caller creates the file there.
    /// A symbolic link to a file is written through, as a shell's `>` and `cp` do: the file it
    /// names is replaced, the link kept.
    pub fn new(dest: &Path) -> Result<Self> {
        let link = std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
        let dest = &if link { std::fs::canonicalize(dest).unwrap_or_else(|_| dest.to_path_buf()) } else { dest.to_path_buf() };
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{}: not a file name", dest.display())))?
            .to_string_lossy()
            .into_owned();
        let mut dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let stream = match existing(dest) {
            Existing::Dir => return Err(Error::input(dest, "is a directory")),
            Existing::Other(what) => return Err(Error::input(dest, format!("is {what}: the output must be a file, a character device or a FIFO"))),
            Existing::Stream => {
                // /dev is not writable by users: the finished file waits in the temporary folder.
                dir = std::env::temp_dir();
                true
            }
            Existing::Nothing | Existing::File => false,
        };
        if !dir.is_dir() {
            return Err(Error::input(dest, format!("folder {} does not exist", dir.display())));
        }
        let prefix = format!(".{name}.balerfile-tmp-{}-", host());
        remove_orphans(&dir, &prefix);
        let tmp = dir.join(format!("{prefix}{}", std::process::id()));
        if stream {
            // A shared temporary folder: the name is claimed as a new file, so a link someone
            // else put there under it is an error, not a file written through.
            std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        let slot = on_signal::register(&tmp);
        Ok(AtomicOutput { dest: dest.to_path_buf(), tmp, slot, stream, committed: false })
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    pub fn commit(mut self) -> Result<()> {
        if self.stream {
            // Opened for writing without truncating or creating: a device or a pipe takes the
            // bytes as they come.
            let copied = std::fs::File::open(&self.tmp).and_then(|mut from| {
                let mut to = std::fs::OpenOptions::new().write(true).open(&self.dest)?;
                std::io::copy(&mut from, &mut to)?;
                std::io::Write::flush(&mut to)
            });
            // Drop removes the temporary, whether the copy worked or not.
            return copied.map_err(|e| Error::io(&self.dest, e));
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

/// This machine's name, so temporaries on a shared file system (NFS, Lustre) say which node's
/// process owns them.
fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or the
    // name is cut, which only shortens the tag.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) } == 0;
    let name = if ok { &buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)] } else { &[][..] };
    let name: String = String::from_utf8_lossy(name).chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() { "host".into() } else { name }
}

/// A process killed while writing (SIGKILL, OOM killer, power loss) leaves its temporary behind;
/// the next write to the same name removes those whose process, on this machine, is gone.
fn remove_orphans(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // kill(pid, 0) fails with ESRCH only when no such process exists.
        // SAFETY: signal 0 sends nothing: kill only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && pid != std::process::id() as i32 {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
        if let Some(k) = self.slot {
            on_signal::release(k);
        }
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP (Ctrl-C, a batch system's time limit, a closed terminal)
/// remove the temporaries being written before the process ends as the signal would end it:
/// without this, each left a hidden partial file (GBs for a large pack) that only a later
/// write to the same name removed. For the command only: a library must not take a host's
/// signals.
pub fn remove_temporaries_on_signal() {
    on_signal::install();
}

mod on_signal {
    use std::ffi::CString;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

    /// Outputs written at once: a pack writes one, an unpack one (a few in tests).
    const SLOTS: usize = 16;
    static PATHS: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    /// Registers `tmp`, returning its slot (None when the handler is not installed or every slot
    /// is taken: the temporary is then left as before, for the next write to remove). The
    /// path's bytes are leaked, never freed, so the handler can read any pointer it finds, even
    /// one `release` has just taken out.
    pub fn register(tmp: &Path) -> Option<usize> {
        if !INSTALLED.load(Ordering::Acquire) {
            return None;
        }
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(tmp.as_os_str().as_bytes()).ok()?;
        let p = c.into_raw();
        for (k, slot) in PATHS.iter().enumerate() {
            if slot.compare_exchange(std::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Some(k);
            }
        }
        // SAFETY: `p` came from CString::into_raw just above and was stored nowhere.
        drop(unsafe { CString::from_raw(p) });
        None
    }

    pub fn release(k: usize) {
        PATHS[k].store(std::ptr::null_mut(), Ordering::Release);
    }

    extern "C" fn handler(sig: libc::c_int) {
        for slot in &PATHS {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: a registered pointer is a NUL-terminated path that is never freed;
                // unlink is async-signal-safe.
                unsafe { libc::unlink(p) };
            }
        }
        // SAFETY: signal and raise are async-signal-safe; with the default action back, the
        // signal ends the process as it would have without this handler (exit status included).
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    pub fn install() {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return;
        }
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `handler` is an extern "C" fn of the type sigaction expects and only does
            // async-signal-safe work; a signal the process ignores (nohup's SIGHUP) stays ignored.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = handler as extern "C" fn(libc::c_int) as *const () as usize;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
    }
}
