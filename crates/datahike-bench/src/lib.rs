//! What the benchmark binaries of this crate share: the workload's schema and the probes of
//! the disk's raw sync rate that durable write rates are read against.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The schema of `../shared/bench/WORKLOAD.md` (section 2).
pub const SCHEMA: &str = r#"[{:db/ident :name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :last-name :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :sex :db/valueType :db.type/keyword :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :age :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :salary :db/valueType :db.type/long :db/cardinality :db.cardinality/one :db/index true}
 {:db/ident :email :db/valueType :db.type/string :db/cardinality :db.cardinality/one :db/unique :db.unique/identity}
 {:db/ident :follows :db/valueType :db.type/ref :db/cardinality :db.cardinality/many}]"#;

/// Bytes of the log frame of one small durable commit (one person of the workload's
/// `new-people`), as `datahike-bench --ops commit-bytes` measured it: what the sync probe
/// writes per sync when no measurement of the run is at hand.
pub const SMALL_COMMIT_BYTES_DEFAULT: usize = 161;

/// Zeros the file log writes ahead of its frames when a frame does not fit (`ZERO_AHEAD_BYTES`
/// of `crates/datahike/src/store/file.rs`).
pub const LOG_ZERO_AHEAD_BYTES: usize = 256 << 10;

/// The disk's rate of durable log appends as the file log makes them, in syncs per second,
/// measured in `dir`: `frames` frames of `frame_bytes` each, written at increasing offsets
/// into zeros written ahead, each followed by one `fdatasync`. A frame that does not fit into
/// the zeros extends the file by itself and [`LOG_ZERO_AHEAD_BYTES`] of zeros, as
/// `Appender::append` does (the first frame of the new file does). The log's change of
/// segment every 32 MiB is left out.
pub fn log_sync_rate(dir: &Path, frames: usize, frame_bytes: usize) -> f64 {
    let (path, file) = probe_file(dir);
    let t = Instant::now();
    write_log_frames(&file, frames, frame_bytes);
    let rate = frames as f64 / t.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    rate
}

/// The writes of [`log_sync_rate`] into the empty `file`; returns the number of extensions.
fn write_log_frames(file: &File, frames: usize, frame_bytes: usize) -> usize {
    let frame = vec![0x5au8; frame_bytes];
    let mut extended = frame.clone();
    extended.resize(frame_bytes + LOG_ZERO_AHEAD_BYTES, 0);
    let (mut len, mut size, mut extensions) = (0u64, 0u64, 0);
    for _ in 0..frames {
        let end = len + frame_bytes as u64;
        if end <= size {
            file.write_all_at(&frame, len).expect("probe write");
        } else {
            file.write_all_at(&extended, len).expect("probe write");
            size = end + LOG_ZERO_AHEAD_BYTES as u64;
            extensions += 1;
        }
        file.sync_data().expect("probe fdatasync");
        len = end;
    }
    extensions
}

/// The disk's rate of 4 KiB append + fdatasync, in operations per second, measured in `dir`:
/// every sync also records a new file size, which the file log avoids (see
/// [`log_sync_rate`]).
pub fn append_sync_rate(dir: &Path, n: usize) -> f64 {
    let (path, mut file) = probe_file(dir);
    let block = vec![0x5au8; 4096];
    let t = Instant::now();
    for _ in 0..n {
        file.write_all(&block).expect("probe write");
        file.sync_data().expect("probe fdatasync");
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    rate
}

/// A new, empty file for a probe in `dir`.
fn probe_file(dir: &Path) -> (PathBuf, File) {
    std::fs::create_dir_all(dir).expect("bench dir");
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let file = File::create(&path).expect("probe file");
    (path, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log probe leaves what the file log leaves: frames back to back, then zeros up to
    /// one zero-ahead past the frame that last extended the file.
    #[test]
    fn log_probe_writes_frames_into_zeros_written_ahead() {
        let dir = std::env::temp_dir().join(format!("datahike-bench-test-{}", std::process::id()));
        let (path, file) = probe_file(&dir);
        let frame_bytes = 1000;
        // 262 frames fill the first zero-ahead (262,144 bytes after the first frame); the
        // 264th is the first that does not fit.
        let frames = 300;
        let extensions = write_log_frames(&file, frames, frame_bytes);
        let bytes = std::fs::read(&path).expect("read the probe file");
        std::fs::remove_dir_all(&dir).expect("remove the probe dir");
        assert_eq!(extensions, 2);
        let last_extension_start = 263 * frame_bytes;
        assert_eq!(bytes.len(), last_extension_start + frame_bytes + LOG_ZERO_AHEAD_BYTES);
        assert!(bytes[..frames * frame_bytes].iter().all(|&b| b == 0x5a));
        assert!(bytes[frames * frame_bytes..].iter().all(|&b| b == 0));
        assert!(log_sync_rate(&dir, 3, SMALL_COMMIT_BYTES_DEFAULT) > 0.0);
        assert!(append_sync_rate(&dir, 3) > 0.0);
        std::fs::remove_dir_all(&dir).expect("remove the probe dir");
    }
}
