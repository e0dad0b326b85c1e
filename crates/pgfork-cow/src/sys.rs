//! The few system calls that std does not wrap: reflink, in-kernel copy, syncfs,
//! statfs/statvfs and FIEMAP. Everything here returns plain `io::Result`; callers attach
//! paths and turn errors into [`crate::CowError`].

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest amount handed to one in-kernel copy call; also the granularity of progress
/// reports. Large enough that syscall overhead is irrelevant.
const COPY_CHUNK: usize = 16 << 20;

/// Buffer of the user-space fallback copy.
const FALLBACK_BUF: usize = 1 << 20;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}

/// True for the errors with which a filesystem says "I cannot share blocks" (as
/// opposed to a real failure such as EIO or EACCES).
pub(crate) fn is_reflink_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EOPNOTSUPP)
            | Some(libc::EXDEV)
            | Some(libc::EINVAL)
            | Some(libc::ENOTTY)
            | Some(libc::ENOSYS)
    ) || error.raw_os_error() == Some(libc::ENOTSUP)
}

// ---------------------------------------------------------------------------------------
// Reflink
// ---------------------------------------------------------------------------------------

/// `FICLONE` = `_IOW(0x94, 9, int)`: make `dst` share all of `src`'s extents.
#[cfg(target_os = "linux")]
const FICLONE: u32 = 0x4004_9409;

/// Replace the contents of `dst` with a copy-on-write clone of all of `src`.
#[cfg(target_os = "linux")]
pub(crate) fn ficlone(src: &File, dst: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: FICLONE takes the source descriptor as its (integer) argument; both
        // descriptors are owned by live `File`s for the duration of the call.
        let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as libc::Ioctl, src.as_raw_fd()) };
        if rc != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// No reflink backend on this platform.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn ficlone(_src: &File, _dst: &File) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Create `dst` (which must not exist) as an APFS clone of the open file `src`.
#[cfg(target_os = "macos")]
pub(crate) fn clonefile_from(src: &File, dst: &Path) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    /// Do not copy the owner; the caller sets it explicitly.
    const CLONE_NOOWNERCOPY: u32 = 0x0002;
    let dst = c_path(dst)?;
    // SAFETY: `dst` is a valid NUL-terminated string and `src` a live descriptor.
    let rc = unsafe {
        libc::fclonefileat(
            src.as_raw_fd(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            CLONE_NOOWNERCOPY,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------------------
// Copy
// ---------------------------------------------------------------------------------------

/// Copy all of `src` (from offset 0 to wherever its end is when we get there) into the
/// empty file `dst`, calling `on_bytes` after each chunk. Returns the bytes copied.
///
/// Linux uses `sendfile(2)`, which moves pages inside the kernel like `copy_file_range`
/// does on non-reflink filesystems, but — unlike `copy_file_range` — never silently
/// turns into a reflink on XFS/btrfs.
#[cfg(target_os = "linux")]
pub(crate) fn copy_data(src: &File, dst: &File, on_bytes: &dyn Fn(u64)) -> io::Result<u64> {
    use std::os::unix::io::AsRawFd;
    let mut offset: libc::off_t = 0;
    loop {
        // SAFETY: both descriptors are live; `offset` is a valid pointer for the call.
        let n =
            unsafe { libc::sendfile(dst.as_raw_fd(), src.as_raw_fd(), &mut offset, COPY_CHUNK) };
        if n > 0 {
            on_bytes(n as u64);
            continue;
        }
        if n == 0 {
            return Ok(offset as u64);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            // This filesystem pair cannot splice; finish in user space.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                return copy_data_rw(src, dst, offset as u64, on_bytes)
            }
            _ => return Err(err),
        }
    }
}

/// Portable copy (macOS must not use `std::fs::copy`, which clones on APFS).
#[cfg(not(target_os = "linux"))]
pub(crate) fn copy_data(src: &File, dst: &File, on_bytes: &dyn Fn(u64)) -> io::Result<u64> {
    copy_data_rw(src, dst, 0, on_bytes)
}

/// User-space copy with positional reads and writes, starting at `offset`.
fn copy_data_rw(
    src: &File,
    dst: &File,
    mut offset: u64,
    on_bytes: &dyn Fn(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; FALLBACK_BUF];
    loop {
        let n = match src.read_at(&mut buf, offset) {
            Ok(0) => return Ok(offset),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all_at(&buf[..n], offset)?;
        offset += n as u64;
        on_bytes(n as u64);
    }
}

// ---------------------------------------------------------------------------------------
// Durability and filesystem facts
// ---------------------------------------------------------------------------------------

/// Flush every dirty page and inode of the filesystem holding `file`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: `file` is a live descriptor.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// No `syncfs` here: fall back to a global `sync(2)` after flushing `file` itself.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    file.sync_all()
}

/// Name of the filesystem type holding `path`, from `statfs(2)`'s magic number.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn filesystem_name(path: &Path) -> io::Result<String> {
    let c = c_path(path)?;
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type's width and signedness vary by architecture; magic numbers are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as u64) & 0xffff_ffff;
    let name = match magic {
        0x5846_5342 => "xfs",
        0xef53 => "ext4",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x2fc1_2fc1 => "zfs",
        0xca45_1a4e => "bcachefs",
        0xf2f5_2010 => "f2fs",
        0x794c_7630 => "overlayfs",
        0x8584_58f6 => "ramfs",
        0x6969 => "nfs",
        0xff53_4d42 => "cifs",
        0xfe53_4d42 => "smb2",
        0x6573_5546 => "fuse",
        0x0100_2100 => "9p",
        other => return Ok(format!("unknown (0x{other:x})")),
    };
    Ok(name.to_string())
}

/// Name of the filesystem type holding `path`, from `statfs(2)`'s `f_fstypename`.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd"
))]
pub(crate) fn filesystem_name(path: &Path) -> io::Result<String> {
    let c = c_path(path)?;
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = st
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let name = String::from_utf8_lossy(&bytes).into_owned();
    Ok(if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    })
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd"
)))]
pub(crate) fn filesystem_name(path: &Path) -> io::Result<String> {
    std::fs::metadata(path)?;
    Ok("unknown".to_string())
}

/// `f_bavail * f_frsize` from `statvfs(3)`.
pub(crate) fn available_bytes(path: &Path) -> io::Result<u64> {
    let c = c_path(path)?;
    // SAFETY: `statvfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Field widths differ between platforms (u32 on macOS, u64 on Linux).
    #[allow(clippy::unnecessary_cast)]
    let (avail, frsize) = (st.f_bavail as u64, st.f_frsize as u64);
    Ok(avail.saturating_mul(frsize))
}

// ---------------------------------------------------------------------------------------
// FIEMAP
// ---------------------------------------------------------------------------------------

#[cfg(target_os = "linux")]
mod fiemap {
    use std::fs::File;
    use std::io;
    use std::os::unix::io::AsRawFd;

    /// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)`.
    const FS_IOC_FIEMAP: u32 = 0xC020_660B;
    /// Write back dirty data first, so delayed allocation shows up as real extents.
    const FIEMAP_FLAG_SYNC: u32 = 0x1;
    const FIEMAP_EXTENT_LAST: u32 = 0x1;
    /// The extent is also referenced by another file (reflink/snapshot).
    const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
    /// Extents fetched per ioctl.
    const BATCH: usize = 128;

    /// `struct fiemap` without its flexible array member.
    #[repr(C)]
    #[derive(Default)]
    struct Header {
        fm_start: u64,
        fm_length: u64,
        fm_flags: u32,
        fm_mapped_extents: u32,
        fm_extent_count: u32,
        fm_reserved: u32,
    }

    /// `struct fiemap_extent`.
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Extent {
        fe_logical: u64,
        fe_physical: u64,
        fe_length: u64,
        fe_reserved64: [u64; 2],
        fe_flags: u32,
        fe_reserved: [u32; 3],
    }

    /// A `struct fiemap` followed by room for `BATCH` extents, as the kernel expects.
    #[repr(C)]
    struct Request {
        header: Header,
        extents: [Extent; BATCH],
    }

    const _: () = assert!(std::mem::size_of::<Header>() == 32);
    const _: () = assert!(std::mem::size_of::<Extent>() == 56);

    /// Bytes of `file` in extents not flagged shared, counting only up to `limit` (the
    /// file size rounded up to a block: blocks preallocated past EOF are the
    /// filesystem's speculation, not the file's data). `Ok(None)` when the filesystem
    /// has no FIEMAP.
    pub(crate) fn unshared_bytes(file: &File, limit: u64) -> io::Result<Option<u64>> {
        let mut req = Box::new(Request {
            header: Header::default(),
            extents: [Extent::default(); BATCH],
        });
        let mut start = 0u64;
        let mut flags = FIEMAP_FLAG_SYNC;
        let mut unique = 0u64;
        while start < limit {
            req.header = Header {
                fm_start: start,
                fm_length: u64::MAX - start,
                fm_flags: flags,
                fm_mapped_extents: 0,
                fm_extent_count: BATCH as u32,
                fm_reserved: 0,
            };
            // SAFETY: `req` is a properly laid out `struct fiemap` with room for
            // `fm_extent_count` extents, alive and exclusively borrowed for the call.
            let rc = unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    FS_IOC_FIEMAP as libc::Ioctl,
                    &mut *req as *mut Request,
                )
            };
            if rc == -1 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::ENOSYS) => {
                        return Ok(None)
                    }
                    _ => return Err(err),
                }
            }
            // Only the first call needs to flush.
            flags = 0;
            let mapped = (req.header.fm_mapped_extents as usize).min(BATCH);
            if mapped == 0 {
                break;
            }
            let mut last = false;
            for e in &req.extents[..mapped] {
                if e.fe_flags & FIEMAP_EXTENT_SHARED == 0 {
                    let end = e.fe_logical.saturating_add(e.fe_length).min(limit);
                    unique += end.saturating_sub(e.fe_logical);
                }
                last |= e.fe_flags & FIEMAP_EXTENT_LAST != 0;
            }
            let tail = &req.extents[mapped - 1];
            let next = tail.fe_logical.saturating_add(tail.fe_length);
            if last || next <= start {
                break;
            }
            start = next;
        }
        Ok(Some(unique))
    }
}

#[cfg(target_os = "linux")]
pub(crate) use fiemap::unshared_bytes;

/// No FIEMAP outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn unshared_bytes(_file: &File, _limit: u64) -> io::Result<Option<u64>> {
    Ok(None)
}
