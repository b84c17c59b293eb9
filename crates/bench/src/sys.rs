//! What the benchmark reads from the system: a server's process tree, its memory (PSS from
//! /proc/PID/smaps_rollup) and the disk space of a directory tree.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `pid` and all its descendants (a Dovecot master and the processes it started).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|x| x.parse::<u32>().ok());
            if let Some(pp) = ppid {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

/// Sum of PSS over the processes, in KiB, and how many processes there were.
pub fn pss_kib(pids: &[u32]) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for p in pids {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        n += 1;
        for line in s.lines() {
            if let Some(v) = line.strip_prefix("Pss:") {
                total += v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
    }
    (total, n)
}

/// Bytes allocated on disk under `dir` (like `du -s --bytes` of blocks; hard links once).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(md) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// CPU seconds the processes have used, user and system, their reaped children's
/// included (`/proc/PID/stat` fields 14-17; Linux's clock tick is 100 Hz): what a
/// server spent of its own, apart from the helpers it calls over the network (rspamd).
pub fn cpu_secs(pids: &[u32]) -> f64 {
    let mut ticks = 0u64;
    for p in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // After the last ')': state (field 3), ppid (4), ...; utime is field 14.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            ticks += rest
                .split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    ticks as f64 / 100.0
}
