//! The simulated disks' semantics (what a crash keeps, failed fsyncs with the dirty pages kept or dropped,
//! failed and short writes) and the real offset store on them: a crash loses only what it had not synced,
//! and a failed fsync is an error, never a commit.

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_core::fs::FileSystem;
use sluice_core::runtime::{FileOffsetStore, OffsetBackingStore, OffsetStoreError};
use sluice_sim::workload::{DirtyPages, DiskFaults, OutputLedger, SimFs, WriteError};

/// The host is worker 0, as a simulated disk is named after its worker.
const HOST: &str = "worker-0";
const FILE: &str = "/data/file.txt";
const OFFSETS: &str = "/data/offsets.json";

/// Runs `before` on a host's simulated disk (with the disk's faults, to arm), crashes the host, and runs
/// `after` on what its disk kept. Returns whether the crash dropped unsynced changes, as the disk faults
/// counted them.
fn crash_between<B, BF, A, AF>(before: B, after: A) -> bool
where
    B: Fn(SimFs, Arc<DiskFaults>) -> BF + 'static,
    BF: Future<Output = ()> + 'static,
    A: Fn(SimFs) -> AF + 'static,
    AF: Future<Output = ()> + 'static,
{
    let mut sim = turmoil::Builder::new()
        .rng_seed(1)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build();
    let phase = Rc::new(RefCell::new(0));
    let done = Rc::new(RefCell::new(0));
    let faults: Arc<DiskFaults> = Arc::default();
    let fs = SimFs::new(faults.clone(), Arc::new(OutputLedger::default()), 0);
    let before = Rc::new(before);
    let after = Rc::new(after);
    {
        let (phase, done, faults) = (phase.clone(), done.clone(), faults.clone());
        sim.host(HOST, move || {
            let (phase, done, fs, armed) =
                (phase.clone(), done.clone(), fs.clone(), faults.clone());
            let (before, after) = (before.clone(), after.clone());
            async move {
                let current = *phase.borrow();
                if current == 0 {
                    turmoil::fs::shim::std::fs::create_dir_all("/data")?;
                    turmoil::fs::shim::std::fs::sync_dir("/")?;
                    before(fs, armed).await;
                } else {
                    after(fs).await;
                }
                *done.borrow_mut() = current + 1;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let step_until = |sim: &mut turmoil::Sim<'_>, n: i32| {
        while *done.borrow() < n {
            sim.step().expect("the simulation runs");
        }
    };
    step_until(&mut sim, 1);
    sim.crash(HOST);
    let dropped = faults.crashed(HOST);
    *phase.borrow_mut() = 1;
    sim.bounce(HOST);
    step_until(&mut sim, 2);
    dropped
}

async fn append(fs: &SimFs, bytes: &[u8]) -> Box<dyn sluice_core::fs::AppendFile> {
    let mut file = fs.open_append(FILE).await.expect("open");
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = file.write(rest).await.expect("write");
        rest = &rest[n..];
    }
    file
}

fn contents(fs: &SimFs) -> Vec<u8> {
    fs.read(Path::new(FILE)).expect("read").unwrap_or_default()
}

#[test]
fn a_crash_keeps_what_was_synced_and_counts_what_it_dropped() {
    let dropped = crash_between(
        |fs, _| async move {
            let mut file = append(&fs, b"synced\n").await;
            file.sync().await.expect("sync");
            file.write(b"unsynced\n").await.expect("write");
            assert_eq!(contents(&fs), b"synced\nunsynced\n");
        },
        |fs| async move { assert_eq!(contents(&fs), b"synced\n") },
    );
    assert!(dropped);
}

#[test]
fn a_crash_after_every_write_was_synced_drops_nothing() {
    let dropped = crash_between(
        |fs, _| async move {
            let mut file = append(&fs, b"a\n").await;
            file.sync().await.expect("sync");
        },
        |fs| async move { assert_eq!(contents(&fs), b"a\n") },
    );
    assert!(!dropped);
}

#[test]
fn a_failed_fsync_that_keeps_the_dirty_pages_lets_a_later_fsync_save_them() {
    crash_between(
        |fs, armed| async move {
            let mut file = append(&fs, b"a\n").await;
            file.sync().await.expect("sync");
            file.write(b"b\n").await.expect("write");
            armed.fail_next_sync(DirtyPages::Kept);
            let err = file.sync().await.expect_err("the armed fsync fails");
            assert_eq!(err.raw_os_error(), Some(5));
            assert_eq!(contents(&fs), b"a\nb\n");
            file.sync().await.expect("a later fsync succeeds");
        },
        |fs| async move { assert_eq!(contents(&fs), b"a\nb\n") },
    );
}

#[test]
fn a_failed_fsync_that_drops_the_dirty_pages_loses_them_though_a_later_fsync_succeeds() {
    crash_between(
        |fs, armed| async move {
            let mut file = append(&fs, b"a\n").await;
            file.sync().await.expect("sync");
            file.write(b"b\n").await.expect("write");
            armed.fail_next_sync(DirtyPages::Dropped);
            file.sync().await.expect_err("the armed fsync fails");
            assert_eq!(contents(&fs), b"a\n\0\0", "the dropped pages read as zeros");
            file.sync().await.expect("a later fsync succeeds");
        },
        |fs| async move { assert_eq!(contents(&fs), b"a\n\0\0") },
    );
}

#[test]
fn writes_fail_or_come_up_short_when_armed() {
    crash_between(
        |fs, armed| async move {
            let mut file = append(&fs, b"").await;
            armed.shorten_writes(1);
            assert_eq!(file.write(b"abcd").await.expect("write"), 2);
            assert_eq!(file.write(b"cd").await.expect("write"), 2);
            armed.fail_next_write(WriteError::Enospc);
            let err = file.write(b"ef").await.expect_err("the armed write fails");
            assert_eq!(err.raw_os_error(), Some(28));
            armed.fail_next_write(WriteError::Eio);
            let err = file.write(b"ef").await.expect_err("the armed write fails");
            assert_eq!(err.raw_os_error(), Some(5));
            assert_eq!(contents(&fs), b"abcd", "a failed write writes nothing");
            file.truncate(1).await.expect("truncate");
            file.sync().await.expect("sync");
        },
        |fs| async move { assert_eq!(contents(&fs), b"a") },
    );
}

fn partition() -> SourcePartition {
    SourcePartition::single("filename", "/data/input.txt")
}

fn offset(position: u64) -> SourceOffset {
    SourceOffset::single("position", position)
}

fn store(fs: SimFs) -> FileOffsetStore {
    FileOffsetStore::open(Arc::new(fs), Path::new(OFFSETS)).expect("open the offset file")
}

#[test]
fn the_offset_store_keeps_every_put_it_reported_across_a_crash() {
    crash_between(
        |fs, _| async move {
            let mut offsets = store(fs);
            offsets.put("c", &[(partition(), offset(14))]).expect("put");
            offsets.put("c", &[(partition(), offset(28))]).expect("put");
        },
        |fs| async move { assert_eq!(store(fs).get("c", &partition()), Some(offset(28))) },
    );
}

#[test]
fn a_failed_fsync_of_the_offset_file_is_an_error_and_never_committed() {
    for pages in [DirtyPages::Kept, DirtyPages::Dropped] {
        crash_between(
            move |fs, armed| async move {
                let mut offsets = store(fs.clone());
                offsets.put("c", &[(partition(), offset(14))]).expect("put");
                armed.fail_next_sync(pages);
                let err = offsets
                    .put("c", &[(partition(), offset(28))])
                    .expect_err("the fsync fails");
                assert!(matches!(err, OffsetStoreError::Write { .. }), "{err}");
                assert_eq!(offsets.get("c", &partition()), Some(offset(14)));
                // What a restart without a crash reads: the failed write left nothing behind.
                assert_eq!(store(fs).get("c", &partition()), Some(offset(14)));
            },
            |fs| async move { assert_eq!(store(fs).get("c", &partition()), Some(offset(14))) },
        );
    }
}

#[test]
fn failed_and_short_writes_of_the_offset_file_are_errors_or_written_whole() {
    crash_between(
        |fs, armed| async move {
            let mut offsets = store(fs);
            armed.fail_next_write(WriteError::Enospc);
            offsets
                .put("c", &[(partition(), offset(14))])
                .expect_err("the write fails");
            assert_eq!(offsets.get("c", &partition()), None);
            armed.shorten_writes(3);
            offsets.put("c", &[(partition(), offset(28))]).expect("put");
        },
        |fs| async move { assert_eq!(store(fs).get("c", &partition()), Some(offset(28))) },
    );
}

/// After a failed directory sync the new file is in place but its rename may not survive a crash: the
/// next put, even of the same offsets, must write it again rather than report success at once.
#[test]
fn a_failed_directory_sync_makes_the_next_put_write_again() {
    crash_between(
        |fs, armed| async move {
            let mut offsets = store(fs);
            offsets.put("c", &[(partition(), offset(14))]).expect("put");
            armed.fail_next_dir_sync();
            let err = offsets
                .put("c", &[(partition(), offset(28))])
                .expect_err("the directory sync fails");
            assert!(
                matches!(err, OffsetStoreError::SyncDirectory { .. }),
                "{err}"
            );
            offsets
                .put("c", &[(partition(), offset(28))])
                .expect("the retry syncs");
        },
        |fs| async move { assert_eq!(store(fs).get("c", &partition()), Some(offset(28))) },
    );
}

/// Without the retry the rename is lost in a crash: what the store would have reported committed is not
/// in the file (the check above is not vacuous).
#[test]
fn a_rename_whose_directory_sync_failed_is_lost_in_a_crash() {
    let dropped = crash_between(
        |fs, armed| async move {
            let mut offsets = store(fs);
            offsets.put("c", &[(partition(), offset(14))]).expect("put");
            armed.fail_next_dir_sync();
            offsets
                .put("c", &[(partition(), offset(28))])
                .expect_err("the directory sync fails");
        },
        |fs| async move { assert_eq!(store(fs).get("c", &partition()), Some(offset(14))) },
    );
    assert!(dropped);
}
