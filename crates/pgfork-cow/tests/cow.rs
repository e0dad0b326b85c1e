#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test
//! Tests against real filesystems: the plain disk the tests run on (ext4 on CI, which has
//! no reflinks, so this exercises the copy path) and, when running as root, one XFS
//! loop image with `reflink=1` shared by all reflink cases (the machine has few loop
//! devices, so there is exactly one mount per test binary, always unmounted).
//!
//! Which storage paths ran is written straight to stderr (bypassing the test harness's
//! capture) so that a skipped path is never silent.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use pgfork_cow::{
    available_bytes, clone_file, clone_tree, fsync_dir, probe, sync_filesystem, usage, CloneMethod,
    CowError, TreeOptions, Visit,
};

const MIB: u64 = 1 << 20;

/// Print past the test harness's output capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// Deterministic incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Every path below `root`, relative, with a description of what it is.
fn listing(root: &Path) -> BTreeSet<(PathBuf, String)> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeSet<(PathBuf, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&p).unwrap();
            let ft = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            if ft.is_symlink() {
                let target = fs::read_link(&p).unwrap();
                out.insert((rel, format!("link -> {}", target.display())));
            } else if ft.is_dir() {
                out.insert((rel, format!("dir {mode:o}")));
                go(root, &p, out);
            } else if ft.is_file() {
                let data = fs::read(&p).unwrap();
                let sum = data
                    .iter()
                    .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64));
                out.insert((rel, format!("file {mode:o} len {} sum {sum}", data.len())));
            } else {
                out.insert((rel, "special".into()));
            }
        }
    }
    let mut out = BTreeSet::new();
    go(root, root, &mut out);
    out
}

/// A small directory tree in the shape of a database directory. Returns the bytes that
/// a clone with [`pg_like_filter`] copies.
fn build_sample_tree(src: &Path) -> u64 {
    mkdir(src, 0o700);
    let mut bytes = 0;
    let mut file = |rel: &str, len: usize, mode: u32, seed: u64| {
        write_file(&src.join(rel), &pattern(len, seed), mode);
        bytes += len as u64;
    };
    file("PG_VERSION", 3, 0o600, 1);
    file("big", 5 * MIB as usize + 123, 0o640, 2);
    file("bin/run.sh", 100, 0o755, 3);
    for i in 0..20 {
        file(&format!("base/1/f{i}"), i * 4099, 0o600, 10 + i as u64);
    }
    file("pg_wal/000000010000000000000001", MIB as usize, 0o600, 4);
    file("pg_wal/archive_status/x.ready", 0, 0o600, 5);
    file("postmaster.pid", 10, 0o600, 6);
    file("locked/inside", 10, 0o400, 7);
    mkdir(&src.join("base"), 0o700);
    mkdir(&src.join("base/1"), 0o750);
    mkdir(&src.join("empty"), 0o711);
    mkdir(&src.join("locked"), 0o500);
    std::os::unix::fs::symlink("base/1/f3", src.join("link_rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link_abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", src.join("base/dangling")).unwrap();
    mkfifo(&src.join("fifo"));
    // pg_wal's contents and postmaster.pid are left out by the test filter.
    bytes - MIB - 10
}

fn pg_like_filter(rel: &Path) -> Visit {
    if rel == Path::new("pg_wal") {
        Visit::EmptyDir
    } else if rel == Path::new("postmaster.pid") {
        Visit::Skip
    } else {
        Visit::Clone
    }
}

/// Below pg_wal, not pg_wal itself (`Path::starts_with` compares whole components).
fn inside_pg_wal(p: &Path) -> bool {
    p.starts_with("pg_wal") && p != Path::new("pg_wal")
}

#[test]
fn clone_method_names() {
    for m in [CloneMethod::Reflink, CloneMethod::Copy] {
        assert_eq!(CloneMethod::parse(m.as_str()), Some(m));
        assert_eq!(m.to_string(), m.as_str());
    }
    assert_eq!(CloneMethod::Reflink.as_str(), "reflink");
    assert_eq!(CloneMethod::Copy.as_str(), "copy");
    assert_eq!(CloneMethod::parse(" Reflink "), Some(CloneMethod::Reflink));
    assert_eq!(CloneMethod::parse("cow"), None);
}

#[test]
fn probe_on_plain_disk() {
    let dir = tempdir();
    let p = probe(dir.path()).unwrap();
    assert_eq!(p.path, dir.path());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "probe left files behind"
    );
    if p.filesystem == "ext4" || p.filesystem == "tmpfs" {
        assert_eq!(p.method, CloneMethod::Copy);
    }
    match p.method {
        CloneMethod::Copy => {
            let w = p.warning().expect("copy must come with a warning");
            assert!(w.contains(&p.filesystem), "{w}");
            assert!(w.contains(&dir.path().display().to_string()), "{w}");
            assert!(w.contains("full copy"), "{w}");
            assert!(!w.contains('\n'));
            if p.filesystem == "ext4" {
                assert!(w.contains("is on ext4, which has no reflinks"), "{w}");
                assert!(w.contains("mkfs.xfs -m reflink=1"), "{w}");
            }
            say(&format!(
                "pgfork-cow: copy path ran on {} ({})",
                p.filesystem,
                dir.path().display()
            ));
        }
        CloneMethod::Reflink => {
            assert_eq!(p.warning(), None);
            say(&format!(
                "pgfork-cow: temp dir is on {} with reflinks; the copy path still ran, forced",
                p.filesystem
            ));
        }
    }
    assert!(matches!(
        probe(&dir.path().join("missing")),
        Err(CowError::Io { .. })
    ));
}

#[test]
fn copy_tree_keeps_content_modes_and_symlinks() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let bytes = build_sample_tree(&src);

    let seen = Mutex::new(Vec::new());
    let filter = |rel: &Path| {
        seen.lock().unwrap().push(rel.to_path_buf());
        pg_like_filter(rel)
    };
    let last = Mutex::new((0u64, 0u64));
    let progress = |done: u64, total: u64| {
        assert!(done <= total);
        let mut l = last.lock().unwrap();
        if done > l.0 {
            *l = (done, total);
        }
    };
    let opts = TreeOptions {
        method: CloneMethod::Copy,
        owner: None,
        filter: &filter,
        progress: Some(&progress),
        threads: 4,
    };
    let stats = clone_tree(&src, &dst, &opts).unwrap();

    assert_eq!(stats.files, 24, "{stats:?}");
    assert_eq!(stats.symlinks, 3, "{stats:?}");
    assert_eq!(stats.bytes, bytes);
    assert_eq!(stats.vanished, 0);
    // root, bin, base, base/1, pg_wal, empty, locked
    assert_eq!(stats.dirs, 7, "{stats:?}");
    assert_eq!(*last.lock().unwrap(), (bytes, bytes));

    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&PathBuf::from("base/1/f3")));
    assert!(seen.contains(&PathBuf::from("pg_wal")));
    assert!(seen.iter().all(|p| p.is_relative()));
    assert!(
        !seen.iter().any(|p| inside_pg_wal(p)),
        "EmptyDir contents must not be visited"
    );
    assert!(!seen.contains(&PathBuf::from("fifo")));

    let mut expected = listing(&src);
    expected.retain(|(p, _)| {
        !(inside_pg_wal(p) || p == Path::new("postmaster.pid") || p == Path::new("fifo"))
    });
    assert_eq!(listing(&dst), expected);
    assert_eq!(mode_of(&dst), 0o700);
    assert_eq!(mode_of(&dst.join("locked")), 0o500);
    assert_eq!(mode_of(&dst.join("bin/run.sh")), 0o755);
    assert_eq!(fs::read_dir(dst.join("pg_wal")).unwrap().count(), 0);
    assert_eq!(
        fs::read_link(dst.join("link_rel")).unwrap(),
        Path::new("base/1/f3")
    );
    // Make the tree removable again for TempDir's cleanup when not root.
    fs::set_permissions(dst.join("locked"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn copy_tree_many_files_default_options() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let mut total = 0;
    for i in 0..300usize {
        let len = (i * 7919) % 70_000;
        write_file(
            &src.join(format!("d{}/f{i}", i % 7)),
            &pattern(len, i as u64),
            0o600,
        );
        total += len as u64;
    }
    // An existing empty destination directory is fine.
    fs::create_dir(&dst).unwrap();
    let stats = clone_tree(&src, &dst, &TreeOptions::new(CloneMethod::Copy)).unwrap();
    assert_eq!((stats.files, stats.bytes, stats.dirs), (300, total, 8));
    assert_eq!(listing(&src), listing(&dst));
}

#[test]
fn reflink_is_refused_on_plain_disk() {
    let dir = tempdir();
    if probe(dir.path()).unwrap().method == CloneMethod::Reflink {
        say("pgfork-cow: temp dir supports reflinks; refusal case not applicable here");
        return;
    }
    let src = dir.path().join("a");
    write_file(&src, b"hello", 0o600);
    let err = clone_file(&src, &dir.path().join("b"), CloneMethod::Reflink, None).unwrap_err();
    assert!(
        matches!(
            err,
            CowError::Unsupported {
                method: CloneMethod::Reflink,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("does not support reflinks"),
        "{err}"
    );

    let tree = dir.path().join("tree");
    write_file(&tree.join("x/y"), b"data", 0o600);
    let err = clone_tree(
        &tree,
        &dir.path().join("tree2"),
        &TreeOptions::new(CloneMethod::Reflink),
    )
    .unwrap_err();
    assert!(matches!(err, CowError::Unsupported { .. }), "{err:?}");
}

#[test]
fn destination_and_source_rules() {
    let dir = tempdir();
    let src = dir.path().join("src");
    write_file(&src.join("f"), b"x", 0o644);
    let opts = TreeOptions::new(CloneMethod::Copy);

    let busy = dir.path().join("busy");
    write_file(&busy.join("leftover"), b"old", 0o644);
    let err = clone_tree(&src, &busy, &opts).unwrap_err();
    assert!(
        matches!(&err, CowError::DestinationNotEmpty { path } if path == &busy),
        "{err:?}"
    );
    assert!(err.to_string().contains("not an empty directory"));

    let file = dir.path().join("file");
    write_file(&file, b"x", 0o644);
    assert!(matches!(
        clone_tree(&src, &file, &opts),
        Err(CowError::DestinationNotEmpty { .. })
    ));

    assert!(matches!(
        clone_tree(&file, &dir.path().join("d1"), &opts),
        Err(CowError::NotADirectory { .. })
    ));
    assert!(matches!(
        clone_tree(&dir.path().join("nope"), &dir.path().join("d2"), &opts),
        Err(CowError::NotFound { .. })
    ));
    // Missing parent of the destination: a plain I/O error naming the path.
    let err = clone_tree(&src, &dir.path().join("no/parent"), &opts).unwrap_err();
    assert!(matches!(err, CowError::Io { .. }), "{err:?}");
}

#[test]
fn vanishing_sources_are_counted_not_fatal() {
    let dir = tempdir();

    // clone_file onto itself is refused and leaves the file alone.
    let same = dir.path().join("same");
    write_file(&same, b"precious", 0o600);
    let err = clone_file(&same, &same, CloneMethod::Copy, None).unwrap_err();
    assert!(matches!(err, CowError::Clone { .. }), "{err:?}");
    assert_eq!(fs::read(&same).unwrap(), b"precious");

    // clone_file on a missing source: a typed error.
    let missing = dir.path().join("missing");
    let err = clone_file(&missing, &dir.path().join("out"), CloneMethod::Copy, None).unwrap_err();
    assert!(
        matches!(&err, CowError::NotFound { path } if path == &missing),
        "{err:?}"
    );

    let src = dir.path().join("src");
    write_file(&src.join("big"), &pattern(3 * MIB as usize, 1), 0o600);
    write_file(&src.join("small"), b"small", 0o600);
    write_file(&src.join("during_walk"), b"gone", 0o600);
    write_file(&src.join("sub/kept"), b"kept", 0o600);

    // One file disappears while the walk looks at it, another after the walk but
    // before its worker gets to it (removed from the progress callback of the big file,
    // which is copied first because copies go largest first).
    let filter = |rel: &Path| {
        if rel == Path::new("during_walk") {
            fs::remove_file(src.join(rel)).unwrap();
        }
        Visit::Clone
    };
    let removed = AtomicBool::new(false);
    let progress = |_done: u64, _total: u64| {
        if !removed.swap(true, Ordering::SeqCst) {
            fs::remove_file(src.join("small")).unwrap();
        }
    };
    let opts = TreeOptions {
        method: CloneMethod::Copy,
        owner: None,
        filter: &filter,
        progress: Some(&progress),
        threads: 1,
    };
    let dst = dir.path().join("dst");
    let stats = clone_tree(&src, &dst, &opts).unwrap();
    assert_eq!(stats.vanished, 2, "{stats:?}");
    assert_eq!(stats.files, 2, "{stats:?}");
    assert_eq!(stats.bytes, 3 * MIB + 4);
    assert!(!dst.join("small").exists());
    assert!(!dst.join("during_walk").exists());
    assert_eq!(fs::read(dst.join("sub/kept")).unwrap(), b"kept");
}

#[test]
fn owner_is_applied_when_root() {
    if !is_root() {
        say("pgfork-cow: owner (chown) case NOT run (not root)");
        return;
    }
    let (uid, gid) = (101, 104);
    let dir = tempdir();
    let src = dir.path().join("src");
    write_file(&src.join("a/b"), b"data", 0o600);
    write_file(&src.join("setuid"), b"x", 0o4755);
    std::os::unix::fs::symlink("a/b", src.join("l")).unwrap();
    let dst = dir.path().join("dst");
    let opts = TreeOptions {
        owner: Some((uid, gid)),
        ..TreeOptions::new(CloneMethod::Copy)
    };
    clone_tree(&src, &dst, &opts).unwrap();
    for rel in ["", "a", "a/b", "l", "setuid"] {
        let m = fs::symlink_metadata(dst.join(rel)).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{rel}");
    }
    // chown would clear set-id bits; the mode is applied after it.
    assert_eq!(mode_of(&dst.join("setuid")), 0o4755);

    let single = dir.path().join("single");
    clone_file(
        &src.join("a/b"),
        &single,
        CloneMethod::Copy,
        Some((uid, gid)),
    )
    .unwrap();
    let m = fs::metadata(&single).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (uid, gid, 0o600));
    say("pgfork-cow: owner (chown to 101:104) case ran");
}

#[test]
fn usage_on_plain_disk() {
    let dir = tempdir();
    let root = dir.path().join("tree");
    write_file(&root.join("a"), &pattern(100_000, 1), 0o600);
    write_file(&root.join("sub/b"), &pattern(MIB as usize, 2), 0o600);
    let sparse = fs::File::create(root.join("sub/sparse")).unwrap();
    sparse.set_len(10 * MIB).unwrap();
    sparse.write_all_at(b"tail", 10 * MIB - 4).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("a", root.join("link")).unwrap();

    let u = usage(&root).unwrap();
    assert_eq!(u.logical_bytes, 100_000 + MIB + 10 * MIB);
    let written = 100_000 + MIB;
    assert!(
        u.unique_bytes >= written && u.unique_bytes <= written + 256 * 1024,
        "holes must not count: {u:?}"
    );
    let one = usage(&root.join("sub/b")).unwrap();
    assert_eq!(one.logical_bytes, MIB);
    assert!(one.unique_bytes >= MIB);
    assert!(matches!(
        usage(&dir.path().join("missing")),
        Err(CowError::Io { .. })
    ));
}

#[test]
fn durability_and_free_space() {
    let dir = tempdir();
    write_file(&dir.path().join("f"), b"x", 0o600);
    sync_filesystem(dir.path()).unwrap();
    sync_filesystem(&dir.path().join("f")).unwrap();
    fsync_dir(dir.path()).unwrap();
    assert!(available_bytes(dir.path()).unwrap() > 0);
    let missing = dir.path().join("missing");
    assert!(matches!(
        sync_filesystem(&missing),
        Err(CowError::Io { .. })
    ));
    assert!(matches!(fsync_dir(&missing), Err(CowError::Io { .. })));
    assert!(matches!(
        available_bytes(&missing),
        Err(CowError::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// XFS with reflink=1, root only
// ---------------------------------------------------------------------------------------

/// One loop-mounted XFS image; unmounted and deleted on drop, even after a panic.
struct XfsImage {
    base: PathBuf,
    image: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

impl XfsImage {
    fn create() -> Result<XfsImage, String> {
        let base = std::env::temp_dir().join(format!("pgfork-cow-xfs-{}", std::process::id()));
        let mut img = XfsImage {
            image: base.join("xfs.img"),
            mnt: base.join("mnt"),
            base,
            mounted: false,
        };
        fs::create_dir_all(&img.mnt).map_err(|e| format!("mkdir: {e}"))?;
        fs::File::create(&img.image)
            .and_then(|f| f.set_len(512 * MIB))
            .map_err(|e| format!("create image: {e}"))?;
        run(Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&img.image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img.image)
            .arg(&img.mnt))?;
        img.mounted = true;
        Ok(img)
    }
}

impl Drop for XfsImage {
    fn drop(&mut self) {
        // A lazy unmount as the last resort still frees the loop device once idle.
        if self.mounted && run(Command::new("umount").arg(&self.mnt)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(&self.mnt));
        }
        let _ = fs::remove_file(&self.image);
        let _ = fs::remove_dir(&self.mnt);
        let _ = fs::remove_dir(&self.base);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn xfs_reflink_paths() {
    if !is_root() {
        say("pgfork-cow: reflink path NOT run (not root)");
        return;
    }
    let img = XfsImage::create()
        .unwrap_or_else(|e| panic!("running as root but could not set up the XFS loop image: {e}"));
    let mnt = img.mnt.as_path();

    // The probe really clones.
    let p = probe(mnt).unwrap();
    assert_eq!(p.method, CloneMethod::Reflink, "{p:?}");
    assert_eq!(p.filesystem, "xfs");
    assert_eq!(p.warning(), None);
    assert_eq!(fs::read_dir(mnt).unwrap().count(), 0, "probe left files");

    // A ~20 MB tree.
    let src = mnt.join("src");
    for i in 0..10u64 {
        write_file(
            &src.join(format!("base/1/big{i}")),
            &pattern(2 * MIB as usize, i),
            0o600,
        );
    }
    for i in 0..50u64 {
        write_file(
            &src.join(format!("base/2/small{i}")),
            &pattern(8192, 100 + i),
            0o600,
        );
    }
    std::os::unix::fs::symlink("base/1/big0", src.join("link")).unwrap();
    let before = usage(&src).unwrap();
    assert_eq!(before.logical_bytes, 20 * MIB + 50 * 8192);
    assert!(before.unique_bytes >= before.logical_bytes, "{before:?}");

    let dst = mnt.join("reflinked");
    let t = Instant::now();
    let stats = clone_tree(&src, &dst, &TreeOptions::new(CloneMethod::Reflink)).unwrap();
    let took = t.elapsed();
    assert_eq!((stats.files, stats.symlinks, stats.vanished), (60, 1, 0));
    assert_eq!(stats.bytes, before.logical_bytes);
    assert_eq!(listing(&src), listing(&dst));

    let clone = usage(&dst).unwrap();
    assert_eq!(clone.logical_bytes, before.logical_bytes);
    assert!(clone.unique_bytes <= MIB, "reflink clone owns {clone:?}");
    // Sharing is symmetric: the parent no longer owns its blocks alone either.
    assert!(usage(&src).unwrap().unique_bytes <= MIB);

    // Writing 1 MiB into the clone un-shares exactly that much.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dst.join("base/1/big3"))
        .unwrap();
    f.write_all_at(&pattern(MIB as usize, 999), 512 * 1024)
        .unwrap();
    drop(f);
    let after = usage(&dst).unwrap();
    let grown = after.unique_bytes - clone.unique_bytes;
    assert!(
        (MIB..=2 * MIB).contains(&grown),
        "unique grew by {grown} after writing 1 MiB: {clone:?} -> {after:?}"
    );
    assert_eq!(after.logical_bytes, clone.logical_bytes);
    // The parent did not change.
    assert_eq!(listing(&src).len(), listing(&dst).len());

    // A single-file reflink.
    let single = mnt.join("single");
    let n = clone_file(
        &src.join("base/1/big5"),
        &single,
        CloneMethod::Reflink,
        None,
    )
    .unwrap();
    assert_eq!(n, 2 * MIB);
    assert_eq!(fs::read(&single).unwrap(), pattern(2 * MIB as usize, 5));
    assert!(usage(&single).unwrap().unique_bytes <= 64 * 1024);

    // Copy on a reflink filesystem must really copy (copy_file_range would reflink).
    let copied = mnt.join("copied");
    let stats = clone_tree(&src, &copied, &TreeOptions::new(CloneMethod::Copy)).unwrap();
    assert_eq!(stats.files, 60);
    let c = usage(&copied).unwrap();
    assert_eq!(c.logical_bytes, before.logical_bytes);
    assert!(
        c.unique_bytes >= c.logical_bytes - c.logical_bytes / 20
            && c.unique_bytes <= c.logical_bytes + MIB,
        "a copy must own its blocks: {c:?}"
    );
    assert_eq!(listing(&src), listing(&copied));

    sync_filesystem(&dst).unwrap();
    fsync_dir(mnt).unwrap();
    assert!(available_bytes(mnt).unwrap() > 100 * MIB);

    // Many small files, as in a database directory: report the time (no assertion,
    // speed targets live in benchmarks).
    let many = mnt.join("many");
    for i in 0..1000u64 {
        write_file(
            &many.join(format!("d{}/f{i}", i % 10)),
            &pattern(8192, i),
            0o600,
        );
    }
    sync_filesystem(mnt).unwrap();
    let t = Instant::now();
    let counted = AtomicU64::new(0);
    let progress = |_d: u64, _t: u64| {
        counted.fetch_add(1, Ordering::Relaxed);
    };
    let opts = TreeOptions {
        progress: Some(&progress),
        ..TreeOptions::new(CloneMethod::Reflink)
    };
    let stats = clone_tree(&many, &mnt.join("many2"), &opts).unwrap();
    let took_many = t.elapsed();
    assert_eq!(stats.files, 1000);
    assert_eq!(
        counted.load(Ordering::Relaxed),
        1000,
        "reflink reports per file"
    );

    say(&format!(
        "pgfork-cow: reflink path ran on xfs loop image (20 MB tree: cloned in {:.1} ms, \
         clone owns {} KiB of {} KiB, +{} KiB after a 1 MiB write, a copy owns {} KiB; \
         1000 files cloned in {:.1} ms)",
        took.as_secs_f64() * 1e3,
        clone.unique_bytes / 1024,
        clone.logical_bytes / 1024,
        grown / 1024,
        c.unique_bytes / 1024,
        took_many.as_secs_f64() * 1e3
    ));
    drop(img);
}
