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
