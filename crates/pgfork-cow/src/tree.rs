//! Cloning files and directory trees.
//!
//! A tree clone runs in three phases, because that is what makes it fast:
//!
//! 1. **Walk** the source once, sequentially, asking the caller's filter about every
//!    entry. The result is a list of directories (in walk order, parents first) and a
//!    list of files and symlinks.
//! 2. **Create the directories** in that order, so that every file's parent exists
//!    before any worker needs it. Directories are a few dozen entries; doing them on
//!    one thread costs nothing and needs no synchronisation.
//! 3. **Clone the files in parallel** on a small scoped thread pool. Reflinks are
//!    metadata operations (tens of microseconds each), so a PostgreSQL data directory of
//!    ~1,000 files is bound by syscall latency, which parallelism hides. Copies are
//!    ordered largest first so the big segments start early and the pool finishes
//!    evenly.
//!
//! Finally the directories get their exact permission bits (they were created writable
//! by their owner so that phase 3 could fill them).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::{sys, CloneMethod, CowError};

/// What [`clone_tree`] does with one entry of the source tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Clone it (for a directory: with all its contents, each asked about in turn).
    Clone,
    /// Leave it out entirely.
    Skip,
    /// For a directory: create it (same mode and owner) but none of its contents.
    /// For anything else this means the same as [`Visit::Clone`].
    EmptyDir,
}

/// The default filter: clone everything.
pub fn clone_everything(_relative: &Path) -> Visit {
    Visit::Clone
}

/// How [`clone_tree`] should work.
pub struct TreeOptions<'a> {
    /// Reflink or full copy; see [`crate::probe`] for which one the filesystem supports.
    pub method: CloneMethod,
    /// chown every created file, directory and symlink to this `(uid, gid)`. Used when
    /// pgfork runs as root and hands the tree to an unprivileged server user. `None`
    /// keeps the creating user.
    pub owner: Option<(u32, u32)>,
    /// Called with the path *relative to the tree root* for every file, directory and
    /// symlink (never for the root itself). Sockets, FIFOs and device nodes are skipped
    /// before the filter is asked.
    pub filter: &'a (dyn Fn(&Path) -> Visit + Sync),
    /// Called from any worker thread with `(bytes_done, bytes_total)`. Copies report
    /// every few megabytes; reflinks report once per file. `bytes_total` is what the
    /// walk saw and is raised if files grow while they are copied.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Worker threads; 0 chooses `available_parallelism`, at most 8.
    pub threads: usize,
}

impl TreeOptions<'static> {
    /// Clone everything with `method`, keeping the current owner, no progress reports,
    /// automatic thread count. Adjust the public fields from there.
    pub fn new(method: CloneMethod) -> Self {
        TreeOptions {
            method,
            owner: None,
            filter: &clone_everything,
            progress: None,
            threads: 0,
        }
    }
}

impl std::fmt::Debug for TreeOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeOptions")
            .field("method", &self.method)
            .field("owner", &self.owner)
            .field("progress", &self.progress.is_some())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// What [`clone_tree`] did.
#[derive(Debug, Default, Clone)]
pub struct TreeStats {
    /// Regular files cloned.
    pub files: u64,
    /// Directories created, the root included.
    pub dirs: u64,
    /// Bytes of regular files cloned (logical size, not space used).
    pub bytes: u64,
    /// Entries that disappeared from the source between the walk and their clone.
    pub vanished: u64,
    /// Symbolic links recreated.
    pub symlinks: u64,
}

/// Clone one file with `method`, creating (or truncating) `dst` with `src`'s permission
/// bits and, if given, `owner`. Returns the number of bytes cloned.
///
/// A missing `src` is reported as [`CowError::NotFound`]; a filesystem that cannot
/// reflink as [`CowError::Unsupported`]. `dst` naming the same file as `src` is refused
/// (truncating it would destroy the source).
pub fn clone_file(
    src: &Path,
    dst: &Path,
    method: CloneMethod,
    owner: Option<(u32, u32)>,
) -> Result<u64, CowError> {
    if let (Ok(a), Ok(b)) = (fs::metadata(src), fs::metadata(dst)) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return Err(CowError::Clone {
                src: src.to_path_buf(),
                dst: dst.to_path_buf(),
                error: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "source and destination are the same file",
                ),
            });
        }
    }
    clone_one(src, dst, method, owner, &|_| {})
}

/// Clone the directory tree `src` into `dst`.
///
/// `dst` must not exist (its parent must) or be an empty directory; anything else is
/// [`CowError::DestinationNotEmpty`], so a clone can never be mixed with leftovers.
/// Directories and files keep their permission bits, symlinks are recreated pointing
/// where the originals point, hard links become independent files, sockets and FIFOs are
/// skipped, modification times are not preserved. Entries that vanish from the source
/// while we work are counted in [`TreeStats::vanished`], not reported as errors (the
/// source may be a live database).
///
/// On error the partially built `dst` is left in place; removing it is the caller's job
/// (the caller builds in a temporary directory anyway).
pub fn clone_tree(src: &Path, dst: &Path, opts: &TreeOptions) -> Result<TreeStats, CowError> {
    let started = Instant::now();

    let root_meta = match fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CowError::NotFound {
                path: src.to_path_buf(),
            })
        }
        Err(e) => return Err(CowError::io("inspect", src, e)),
    };
    if !root_meta.is_dir() {
        return Err(CowError::NotADirectory {
            path: src.to_path_buf(),
        });
    }
    prepare_destination(dst)?;

    let walk = walk(src, opts.filter, true)?;
    let walked = started.elapsed();

    // Phase 2: directories, parents first. The root exists already.
    set_owner(dst, opts.owner, false)?;
    for dir in &walk.dirs {
        let path = dst.join(&dir.rel);
        fs::DirBuilder::new()
            .mode(dir.mode | 0o700)
            .create(&path)
            .map_err(|e| CowError::io("create directory", &path, e))?;
        set_owner(&path, opts.owner, false)?;
    }

    // Phase 3: files and symlinks, in parallel.
    let total = AtomicU64::new(walk.files.iter().map(|f| f.size).sum());
    let done = AtomicU64::new(0);
    let files = AtomicU64::new(0);
    let symlinks = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let vanished = AtomicU64::new(walk.vanished);
    let report = |n: u64| {
        if let Some(progress) = opts.progress {
            let d = done.fetch_add(n, Ordering::Relaxed) + n;
            let t = total.fetch_max(d, Ordering::Relaxed).max(d);
            progress(d, t);
        }
    };
    let mut jobs: Vec<&Entry> = walk.files.iter().collect();
    if opts.method == CloneMethod::Copy {
        jobs.sort_by_key(|e| std::cmp::Reverse(e.size));
    }
    let threads = effective_threads(opts.threads, jobs.len());
    for_each_parallel(&jobs, threads, |entry| {
        let from = src.join(&entry.rel);
        let to = dst.join(&entry.rel);
        let result = match entry.kind {
            Kind::File => {
                let report_copy = |n: u64| {
                    if opts.method == CloneMethod::Copy {
                        report(n)
                    }
                };
                clone_one(&from, &to, opts.method, opts.owner, &report_copy).map(|n| {
                    files.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(n, Ordering::Relaxed);
                    if opts.method != CloneMethod::Copy {
                        report(n);
                    }
                })
            }
            Kind::Symlink => copy_symlink(&from, &to, opts.owner).map(|()| {
                symlinks.fetch_add(1, Ordering::Relaxed);
            }),
        };
        match result {
            Err(CowError::NotFound { .. }) => {
                tracing::debug!(path = %from.display(), "source vanished during clone; skipped");
                vanished.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            other => other,
        }
    })?;

    // Exact directory modes last, children before parents, so that a read-only
    // directory never blocks filling or fixing up what is below it.
    for dir in walk.dirs.iter().rev() {
        let path = dst.join(&dir.rel);
        fs::set_permissions(&path, Permissions::from_mode(dir.mode))
            .map_err(|e| CowError::io("set permissions of", &path, e))?;
    }
    let root_mode = root_meta.permissions().mode() & 0o7777;
    fs::set_permissions(dst, Permissions::from_mode(root_mode))
        .map_err(|e| CowError::io("set permissions of", dst, e))?;

    let stats = TreeStats {
        files: files.into_inner(),
        dirs: walk.dirs.len() as u64 + 1,
        bytes: bytes.into_inner(),
        vanished: vanished.into_inner(),
        symlinks: symlinks.into_inner(),
    };
    tracing::debug!(
        src = %src.display(),
        dst = %dst.display(),
        method = %opts.method,
        threads,
        files = stats.files,
        dirs = stats.dirs,
        symlinks = stats.symlinks,
        bytes = stats.bytes,
        vanished = stats.vanished,
        walk_ms = walked.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "cloned tree"
    );
    Ok(stats)
}

/// Make sure `dst` is an empty directory, creating it if it does not exist.
fn prepare_destination(dst: &Path) -> Result<(), CowError> {
    match fs::symlink_metadata(dst) {
        Ok(meta) if meta.is_dir() => {
            let mut entries =
                fs::read_dir(dst).map_err(|e| CowError::io("read directory", dst, e))?;
            if entries.next().is_some() {
                return Err(CowError::DestinationNotEmpty {
                    path: dst.to_path_buf(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(CowError::DestinationNotEmpty {
            path: dst.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(dst)
            .map_err(|e| CowError::io("create directory", dst, e)),
        Err(e) => Err(CowError::io("inspect", dst, e)),
    }
}

// ---------------------------------------------------------------------------------------
// Walk
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Symlink,
}

/// A file or symlink found by the walk.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Relative to the walk root.
    pub(crate) rel: PathBuf,
    pub(crate) kind: Kind,
    /// Size seen by the walk (0 unless asked to stat files).
    pub(crate) size: u64,
}

/// A directory found by the walk (never the root).
#[derive(Debug)]
pub(crate) struct DirEntry {
    pub(crate) rel: PathBuf,
    pub(crate) mode: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Parents before children.
    pub(crate) dirs: Vec<DirEntry>,
    pub(crate) files: Vec<Entry>,
    pub(crate) vanished: u64,
}

/// Walk `root` depth-first without following symlinks. Entries that disappear while we
/// look at them are counted, not reported. With `stat_files`, files carry their size.
pub(crate) fn walk(
    root: &Path,
    filter: &(dyn Fn(&Path) -> Visit + Sync),
    stat_files: bool,
) -> Result<Walk, CowError> {
    let mut out = Walk::default();
    // Directories still to read, relative to root.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let abs_dir = root.join(&rel_dir);
        let reader = match fs::read_dir(&abs_dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.vanished += 1;
                continue;
            }
            Err(e) => return Err(CowError::io("read directory", &abs_dir, e)),
        };
        let mut subdirs = Vec::new();
        for item in reader {
            let item = item.map_err(|e| CowError::io("read directory", &abs_dir, e))?;
            let rel = rel_dir.join(item.file_name());
            let file_type = match item.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    out.vanished += 1;
                    continue;
                }
                Err(e) => return Err(CowError::io("inspect", &item.path(), e)),
            };
            let kind = if file_type.is_dir() {
                None
            } else if file_type.is_file() {
                Some(Kind::File)
            } else if file_type.is_symlink() {
                Some(Kind::Symlink)
            } else {
                tracing::debug!(path = %item.path().display(), "skipping special file");
                continue;
            };
            let visit = filter(&rel);
            if visit == Visit::Skip {
                continue;
            }
            let needs_stat = kind.is_none() || (stat_files && kind == Some(Kind::File));
            let meta = if needs_stat {
                match item.metadata() {
                    Ok(m) => Some(m),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        out.vanished += 1;
                        continue;
                    }
                    Err(e) => return Err(CowError::io("inspect", &item.path(), e)),
                }
            } else {
                None
            };
            match kind {
                None => {
                    let mode = meta.map_or(0o700, |m| m.permissions().mode() & 0o7777);
                    out.dirs.push(DirEntry {
                        rel: rel.clone(),
                        mode,
                    });
                    if visit == Visit::Clone {
                        subdirs.push(rel);
                    }
                }
                Some(kind) => out.files.push(Entry {
                    rel,
                    kind,
                    size: meta.map_or(0, |m| m.len()),
                }),
            }
        }
        // Reversed so that popping visits them in directory order (cosmetic, but it
        // makes logs and the directory-creation order easy to follow).
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// One entry
// ---------------------------------------------------------------------------------------

fn open_source(src: &Path) -> Result<File, CowError> {
    File::open(src).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CowError::NotFound {
                path: src.to_path_buf(),
            }
        } else {
            CowError::io("open", src, e)
        }
    })
}

/// Create (or truncate) `dst` for writing with `mode`, then apply owner and exact mode.
fn create_destination(dst: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<File, CowError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode | 0o200)
        .open(dst)
        .map_err(|e| CowError::io("create", dst, e))?;
    finish_destination(&file, dst, mode, owner)?;
    Ok(file)
}

/// chown before chmod: a chown clears set-id bits, so the mode must come after it.
fn finish_destination(
    file: &File,
    dst: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), CowError> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))
            .map_err(|e| CowError::io("change the owner of", dst, e))?;
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| CowError::io("set permissions of", dst, e))
}

fn clone_one(
    src: &Path,
    dst: &Path,
    method: CloneMethod,
    owner: Option<(u32, u32)>,
    on_bytes: &dyn Fn(u64),
) -> Result<u64, CowError> {
    let src_file = open_source(src)?;
    let meta = src_file
        .metadata()
        .map_err(|e| CowError::io("inspect", src, e))?;
    if !meta.is_file() {
        return Err(CowError::Clone {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    match method {
        CloneMethod::Reflink => {
            reflink(&src_file, src, dst, mode, owner)?;
            Ok(meta.len())
        }
        CloneMethod::Copy => {
            let dst_file = create_destination(dst, mode, owner)?;
            sys::copy_data(&src_file, &dst_file, on_bytes)
                .map_err(|e| CowError::clone_failed(src, dst, e))
        }
    }
}

fn reflink_error(src: &Path, dst: &Path, e: io::Error) -> CowError {
    if sys::is_reflink_unsupported(&e) {
        CowError::Unsupported {
            method: CloneMethod::Reflink,
            path: dst.to_path_buf(),
        }
    } else {
        CowError::clone_failed(src, dst, e)
    }
}

#[cfg(not(target_os = "macos"))]
fn reflink(
    src_file: &File,
    src: &Path,
    dst: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), CowError> {
    let dst_file = create_destination(dst, mode, owner)?;
    sys::ficlone(src_file, &dst_file).map_err(|e| reflink_error(src, dst, e))
}

/// `fclonefileat` creates the destination itself and refuses to overwrite, so an
/// existing `dst` is removed first (same "create or replace" contract as on Linux).
#[cfg(target_os = "macos")]
fn reflink(
    src_file: &File,
    src: &Path,
    dst: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), CowError> {
    match fs::remove_file(dst) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(CowError::io("replace", dst, e)),
    }
    sys::clonefile_from(src_file, dst).map_err(|e| reflink_error(src, dst, e))?;
    let dst_file = OpenOptions::new()
        .read(true)
        .open(dst)
        .map_err(|e| CowError::io("open", dst, e))?;
    finish_destination(&dst_file, dst, mode, owner)
}

fn copy_symlink(src: &Path, dst: &Path, owner: Option<(u32, u32)>) -> Result<(), CowError> {
    let target = fs::read_link(src).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CowError::NotFound {
                path: src.to_path_buf(),
            }
        } else {
            CowError::io("read symlink", src, e)
        }
    })?;
    std::os::unix::fs::symlink(&target, dst).map_err(|e| CowError::io("create symlink", dst, e))?;
    set_owner(dst, owner, true)
}

fn set_owner(path: &Path, owner: Option<(u32, u32)>, symlink: bool) -> Result<(), CowError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let result = if symlink {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    } else {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    };
    result.map_err(|e| CowError::io("change the owner of", path, e))
}

// ---------------------------------------------------------------------------------------
// Worker pool
// ---------------------------------------------------------------------------------------

/// Threads to use for `jobs` items when the caller asked for `requested` (0 = choose).
pub(crate) fn effective_threads(requested: usize, jobs: usize) -> usize {
    let wanted = if requested == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    } else {
        requested
    };
    wanted.min(jobs).max(1)
}

/// Run `work` over `items` on `threads` threads (the calling thread is one of them),
/// handing out items through a shared counter. Stops handing out work after the first
/// error and returns it.
pub(crate) fn for_each_parallel<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<(), CowError> + Sync,
) -> Result<(), CowError> {
    if threads <= 1 {
        return items.iter().try_for_each(work);
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<CowError>> = Mutex::new(None);
    let worker = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            if let Err(e) = work(item) {
                failed.store(true, Ordering::Relaxed);
                let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
            }
        }
    };
    std::thread::scope(|scope| {
        for n in 1..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("pgfork-cow-{n}"))
                .spawn_scoped(scope, worker);
            if let Err(e) = spawned {
                // Fewer workers is slower, not wrong.
                tracing::warn!(error = %e, "could not start clone worker thread");
                break;
            }
        }
        worker();
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
