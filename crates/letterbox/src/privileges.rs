//! Running without root. `serve` started as root binds its ports, then gives the data
//! directory to `[server] user` (default `letterbox`) and becomes that user; it refuses
//! to go on as root unless `[server] allow_root = true`. Admin commands started as root
//! become the data directory's owner, so that every file keeps one owner.

use anyhow::{bail, Context as _, Result};
use letterbox_config::Config;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// (uid, gid) of a user name, if it exists.
fn lookup(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16384];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the use of pwd's fields.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

fn become_user(uid: u32, gid: u32) -> Result<()> {
    // SAFETY: plain system calls with valid arguments; order matters (groups and gid
    // must change while still root).
    unsafe {
        if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            bail!(
                "cannot switch to uid {uid}: {}",
                std::io::Error::last_os_error()
            );
        }
        if libc::setuid(0) == 0 {
            bail!("privileges were not dropped (setuid(0) still succeeds)");
        }
    }
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot give {} to uid {uid}", path.display()))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// For `serve`, after binding: drop root as configured.
pub fn drop_for_serve(config: &Config) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    if config.server.allow_root {
        tracing::warn!("running as root (server.allow_root = true)");
        return Ok(());
    }
    let name = &config.server.user;
    let Some((uid, gid)) = lookup(name) else {
        bail!(
            "refusing to run as root: user `{name}` (config key `server.user`) does not exist; \
             create it (useradd --system {name}), name another user, or set server.allow_root = true"
        );
    };
    if uid == 0 {
        bail!("config key `server.user` names a root account; set server.allow_root = true to run as root");
    }
    chown_tree(&config.data_dir, uid, gid)?;
    become_user(uid, gid)?;
    check_store_reachable(config, name)?;
    tracing::info!("running as {name} (uid {uid})");
    Ok(())
}

/// After the switch: the store was opened as root, but every new connection to it (the
/// read pool, the watcher) and every blob file is opened as `user`. A data directory
/// whose path that user cannot walk (a parent directory without search permission)
/// would leave a server that listens and fails every session; refuse to start instead.
fn access(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn check_store_reachable(config: &Config, user: &str) -> Result<()> {
    let db = config.data_dir.join("store.db");
    let probe = config.data_dir.join(".write-test");
    // Never open store.db itself here: closing any descriptor of it would drop the
    // POSIX locks SQLite holds on it in this process (the writer's connection). On
    // PostgreSQL there is no store.db: data_dir holds the shared blobs only.
    let embedded = config.store.backend == letterbox_config::StoreBackend::Embedded;
    let result = (if embedded { access(&db) } else { Ok(()) })
        .and_then(|()| std::fs::read_dir(config.data_dir.join("blobs")).map(drop))
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = result {
        bail!(
            "cannot reach the store {} as user `{user}` (config key `server.user`): {e}; \
             let that user reach and write every directory on the path",
            config.data_dir.display()
        );
    }
    Ok(())
}

/// For admin commands: when root, act as the data directory's owner.
pub fn drop_for_admin(config: &Config) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    match std::fs::metadata(&config.data_dir) {
        Ok(meta) if meta.uid() != 0 => become_user(meta.uid(), meta.gid()),
        _ => Ok(()),
    }
}

/// Gives `path` to the group `name` (`[authd] socket_group`: the MTA's group, so that
/// it can use the auth socket).
pub fn chgrp(path: &Path, name: &str) -> Result<()> {
    let cname = CString::new(name).context("group name contains NUL")?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16384];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the use of grp's fields.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        bail!("group `{name}` does not exist");
    }
    std::os::unix::fs::chown(path, None, Some(grp.gr_gid))
        .with_context(|| format!("cannot give {} to group {name}", path.display()))
}
