//! Per-group snapshot files: round trip, replacement, and every kind of damage being
//! reported as corruption rather than loaded.

use std::fs;
use std::path::Path;

use storage::error::Error;
use storage::snapshot_file::SnapshotFiles;

fn snap_path(dir: &Path, group: u32) -> std::path::PathBuf {
    dir.join(format!("snap-{group}"))
}

fn assert_corrupt(files: &SnapshotFiles, group: u32, what: &str) {
    match files.load(group) {
        Err(Error::Corruption(msg)) => eprintln!("{what}: {msg}"),
        other => panic!("{what}: expected Corruption, got {other:?}"),
    }
}

#[test]
fn save_load_round_trip_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::new(dir.path().join("snaps")).unwrap();
    assert_eq!(files.load(1).unwrap(), None);
    files.save(1, b"meta-1", b"data-1").unwrap();
    files.save(2, b"", b"").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    files.save(u32::MAX, b"node", &big).unwrap();
    assert_eq!(
        files.load(1).unwrap(),
        Some((b"meta-1".to_vec(), b"data-1".to_vec()))
    );
    assert_eq!(files.load(2).unwrap(), Some((Vec::new(), Vec::new())));
    assert_eq!(files.load(u32::MAX).unwrap(), Some((b"node".to_vec(), big)));
    assert_eq!(files.load(3).unwrap(), None);
    assert_eq!(files.groups().unwrap(), vec![1, 2, u32::MAX]);

    // A new instance (restart) sees the same files.
    let files = SnapshotFiles::new(dir.path().join("snaps")).unwrap();
    assert_eq!(
        files.load(1).unwrap(),
        Some((b"meta-1".to_vec(), b"data-1".to_vec()))
    );
}

#[test]
fn save_replaces_and_keeps_only_latest() {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::new(dir.path()).unwrap();
    files.save(5, b"m1", &[1; 1000]).unwrap();
    files.save(5, b"m2", &[2; 10]).unwrap();
    assert_eq!(files.load(5).unwrap(), Some((b"m2".to_vec(), vec![2; 10])));
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["snap-5".to_string()],
        "one file per group, no temp left"
    );
    files.remove(5).unwrap();
    files.remove(5).unwrap();
    assert_eq!(files.load(5).unwrap(), None);
    assert!(files.groups().unwrap().is_empty());
}

#[test]
fn leftover_tmp_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let files = SnapshotFiles::new(dir.path()).unwrap();
        files.save(7, b"good", b"old").unwrap();
    }
    // A save that crashed before its rename: half a file under the temp name.
    fs::write(dir.path().join("snap-7.tmp"), b"STRSNAP\0garbage").unwrap();
    fs::write(dir.path().join("snap-8.tmp"), b"").unwrap();
    let files = SnapshotFiles::new(dir.path()).unwrap();
    assert!(!dir.path().join("snap-7.tmp").exists());
    assert!(!dir.path().join("snap-8.tmp").exists());
    assert_eq!(
        files.load(7).unwrap(),
        Some((b"good".to_vec(), b"old".to_vec()))
    );
    assert_eq!(files.load(8).unwrap(), None);
    assert_eq!(files.groups().unwrap(), vec![7]);
}

#[test]
fn damaged_files_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::new(dir.path()).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    files.save(1, b"meta", &data).unwrap();
    let path = snap_path(dir.path(), 1);
    let good = fs::read(&path).unwrap();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", Vec::new()),
        ("half a header", good[..20].to_vec()),
        ("header only", good[..36].to_vec()),
        ("truncated data", good[..good.len() - 1].to_vec()),
        ("trailing garbage", [good.clone(), vec![0]].concat()),
    ];
    let mut flip = |what, at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x40;
        cases.push((what, b));
    };
    flip("bad magic", 0);
    flip("bad version", 11);
    flip("bad group", 15);
    flip("bad meta length", 23);
    flip("bad data length", 31);
    flip("bad crc", 33);
    flip("flipped meta byte", 37);
    flip("flipped data byte", 36 + 4 + 5000);
    flip("flipped last byte", good.len() - 1);
    let mut huge = good.clone();
    huge[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    cases.push(("absurd length", huge));

    for (what, bytes) in cases {
        fs::write(&path, bytes).unwrap();
        assert_corrupt(&files, 1, what);
    }

    // A file copied to another group's name is refused too.
    fs::write(snap_path(dir.path(), 2), &good).unwrap();
    assert_corrupt(&files, 2, "wrong group");

    // Saving again repairs it.
    files.save(1, b"meta", &data).unwrap();
    assert_eq!(files.load(1).unwrap(), Some((b"meta".to_vec(), data)));
}

/// Sends `from`'s snapshot of `group` to `to` in chunks of `chunk` bytes, as the Raft layer
/// does, and returns what the last chunk produced.
fn transfer(
    from: &SnapshotFiles,
    to: &SnapshotFiles,
    group: u32,
    chunk: usize,
) -> storage::error::Result<Option<storage::snapshot_file::SnapshotHandle>> {
    let h = from.open(group).unwrap().unwrap();
    let mut offset = 0;
    loop {
        let bytes = h.read_chunk(offset, chunk).unwrap();
        let got = to.receive_chunk(group, offset, h.len(), &bytes)?;
        offset += bytes.len() as u64;
        if offset == h.len() {
            return Ok(got);
        }
        assert!(got.is_none(), "only the last chunk completes a transfer");
    }
}

#[test]
fn a_snapshot_streams_to_another_node_in_chunks() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, follower) = (
        SnapshotFiles::new(a.path()).unwrap(),
        SnapshotFiles::new(b.path()).unwrap(),
    );
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13) as u8).collect();
    // Written through the streaming writer in odd pieces.
    let h = leader
        .write(3, b"meta-3", |w| {
            for piece in data.chunks(7777) {
                w.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(h.meta(), b"meta-3");
    assert_eq!(h.read_data().unwrap(), data);
    assert_eq!(h.len(), fs::metadata(snap_path(a.path(), 3)).unwrap().len());

    let got = transfer(&leader, &follower, 3, 65_536).unwrap().unwrap();
    assert_eq!(got.meta(), b"meta-3");
    assert!(!follower.is_installed(3, &got));
    assert_eq!(
        follower.load(3).unwrap(),
        None,
        "not the group's snapshot before install"
    );
    follower.install(3, &got).unwrap();
    assert_eq!(
        follower.load(3).unwrap(),
        Some((b"meta-3".to_vec(), data.clone()))
    );
    // Received whole in one chunk too.
    transfer(&leader, &follower, 3, usize::MAX)
        .unwrap()
        .unwrap();
}

#[test]
fn chunks_out_of_order_or_damaged_are_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (leader, follower) = (
        SnapshotFiles::new(a.path()).unwrap(),
        SnapshotFiles::new(b.path()).unwrap(),
    );
    leader.save(1, b"m", &[9u8; 10_000]).unwrap();
    let h = leader.open(1).unwrap().unwrap();
    let total = h.len();
    let first = h.read_chunk(0, 4096).unwrap();
    // A chunk without its start, a gap, an overlap, one past the end.
    assert!(follower.receive_chunk(1, 4096, total, &first).is_err());
    follower.receive_chunk(1, 0, total, &first).unwrap();
    assert!(follower.receive_chunk(1, 8192, total, &first).is_err());
    assert!(follower.receive_chunk(1, 100, total, &first).is_err());
    assert!(follower
        .receive_chunk(1, total - 10, total, &first)
        .is_err());
    // A flipped byte in transit is caught by the checksum when the file completes.
    let mut rest = h.read_chunk(4096, usize::MAX).unwrap();
    rest[500] ^= 1;
    match follower.receive_chunk(1, 4096, total, &rest) {
        Err(Error::Corruption(_)) => {}
        other => panic!("expected Corruption, got {other:?}"),
    }
    // A file of another group is refused when it completes.
    leader.save(2, b"m", &[1u8; 100]).unwrap();
    let other = leader.open(2).unwrap().unwrap();
    let bytes = other.read_chunk(0, usize::MAX).unwrap();
    assert!(matches!(
        follower.receive_chunk(1, 0, other.len(), &bytes),
        Err(Error::Corruption(_))
    ));
    // Starting over at offset 0 always works.
    let got = transfer(&leader, &follower, 1, 3000).unwrap().unwrap();
    follower.install(1, &got).unwrap();
    assert_eq!(follower.load(1).unwrap().unwrap().1, vec![9u8; 10_000]);
    assert_eq!(follower.groups().unwrap(), vec![1]);
}

#[test]
fn an_open_snapshot_outlives_its_replacement_and_leftovers_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let files = SnapshotFiles::new(dir.path()).unwrap();
    files.save(4, b"old", &[1u8; 5000]).unwrap();
    let old = files.open(4).unwrap().unwrap();
    files.save(4, b"new", &[2u8; 10]).unwrap();
    // A transfer that started with the old snapshot keeps reading it.
    assert_eq!(old.meta(), b"old");
    assert_eq!(old.read_data().unwrap(), vec![1u8; 5000]);
    assert_eq!(files.load(4).unwrap().unwrap().0, b"new".to_vec());

    // An unfinished transfer and a received snapshot never installed (a crash) are removed
    // at start-up; a refused one is discarded at once.
    let other = tempfile::tempdir().unwrap();
    let sender = SnapshotFiles::new(other.path()).unwrap();
    sender.save(4, b"x", &[3u8; 100]).unwrap();
    let ready = transfer(&sender, &files, 4, 64).unwrap().unwrap();
    files.discard(4, &ready).unwrap();
    let ready = transfer(&sender, &files, 4, 64).unwrap().unwrap();
    drop(ready);
    let h = sender.open(4).unwrap().unwrap();
    files
        .receive_chunk(4, 0, h.len(), &h.read_chunk(0, 10).unwrap())
        .unwrap();
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(dir.path()).len(), 3, "{:?}", names(dir.path()));
    let files = SnapshotFiles::new(dir.path()).unwrap();
    assert_eq!(names(dir.path()), vec!["snap-4".to_string()]);
    assert_eq!(files.load(4).unwrap().unwrap().0, b"new".to_vec());
}
