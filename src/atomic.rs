//! Output files appear whole or not at all: everything is written to a temporary name in the
//! destination folder and renamed over the destination only when complete. A failed or
//! interrupted write leaves the destination untouched (a killed process may leave the hidden
//! temporary file, never a partial file at the output name).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub struct AtomicOutput {
    dest: PathBuf,
    tmp: PathBuf,
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
        let resolved;
        let dest = match std::fs::symlink_metadata(dest) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dest) {
                Ok(target) => {
                    resolved = target;
                    resolved.as_path()
                }
                Err(_) => dest,
            },
            _ => dest,
        };
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
        Ok(AtomicOutput { dest: dest.to_path_buf(), tmp, stream, committed: false })
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
    }
}
