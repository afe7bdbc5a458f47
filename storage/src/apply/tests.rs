use super::*;
use crate::command::Command;
use crate::record::UserKey;
use proptest::prelude::*;

fn digest(n: u8) -> crate::record::Digest {
    UserKey::Int(i64::from(n)).digest("s")
}

fn write(n: u8, ops: Vec<Op>) -> WriteCommand {
    WriteCommand {
        digest: digest(n),
        set: "s".into(),
        key: None,
        exists: ExistsPolicy::Ignore,
        generation: GenerationPolicy::None,
        expiry: Expiry::Set(0),
        now: 100,
        last_update: 100_000,
        ops,
        respond_all_ops: false,
    }
}

fn put(n: u8, bin: &str, v: Value) -> Command {
    Command::Write(write(n, vec![Op::Write(Bin::new(bin, v))]))
}

#[test]
fn put_then_generation_counts_writes() {
    let mut s = RecordStore::new();
    assert_eq!(
        apply(&mut s, &put(1, "a", Value::Int(1))),
        Outcome::ok(1, 0)
    );
    assert_eq!(
        apply(&mut s, &put(1, "b", Value::Int(2))),
        Outcome::ok(2, 0)
    );
    let r = s.get(&digest(1), 100).unwrap();
    assert_eq!(r.bin("a"), Some(&Value::Int(1)));
    assert_eq!(r.bin("b"), Some(&Value::Int(2)));
}

#[test]
fn exists_policies() {
    let mut s = RecordStore::new();
    let mut w = write(1, vec![Op::Write(Bin::new("a", Value::Int(1)))]);
    w.exists = ExistsPolicy::Update;
    assert_eq!(
        apply(&mut s, &Command::Write(w.clone())).code,
        ResultCode::NotFound
    );
    w.exists = ExistsPolicy::Create;
    assert_eq!(
        apply(&mut s, &Command::Write(w.clone())).code,
        ResultCode::Ok
    );
    assert_eq!(
        apply(&mut s, &Command::Write(w.clone())).code,
        ResultCode::RecordExists
    );
    let mut r = write(1, vec![Op::Write(Bin::new("b", Value::Int(2)))]);
    r.exists = ExistsPolicy::Replace;
    assert_eq!(apply(&mut s, &Command::Write(r)).code, ResultCode::Ok);
    let rec = s.get(&digest(1), 100).unwrap();
    assert_eq!(rec.bin("a"), None, "replace drops bins not written");
    assert_eq!(rec.generation, 2);
}

#[test]
fn generation_checks() {
    let mut s = RecordStore::new();
    apply(&mut s, &put(1, "a", Value::Int(1)));
    let mut w = write(1, vec![Op::Write(Bin::new("a", Value::Int(2)))]);
    w.generation = GenerationPolicy::Eq(5);
    let o = apply(&mut s, &Command::Write(w.clone()));
    assert_eq!((o.code, o.generation), (ResultCode::Generation, 1));
    w.generation = GenerationPolicy::Eq(1);
    assert_eq!(
        apply(&mut s, &Command::Write(w.clone())).code,
        ResultCode::Ok
    );
    w.generation = GenerationPolicy::Gt(2);
    assert_eq!(
        apply(&mut s, &Command::Write(w.clone())).code,
        ResultCode::Generation
    );
    w.generation = GenerationPolicy::Gt(3);
    assert_eq!(apply(&mut s, &Command::Write(w)).code, ResultCode::Ok);
}

#[test]
fn incr_append_prepend_and_type_errors() {
    let mut s = RecordStore::new();
    let ops = vec![
        Op::Incr(Bin::new("n", Value::Int(5))),
        Op::Incr(Bin::new("n", Value::Int(-2))),
        Op::Append(Bin::new("t", Value::Str(b"lo".to_vec()))),
        Op::Prepend(Bin::new("t", Value::Str(b"hel".to_vec()))),
        Op::Read("n".into()),
        Op::Read("t".into()),
        Op::Read("missing".into()),
    ];
    let o = apply(&mut s, &Command::Write(write(1, ops)));
    assert_eq!(o.code, ResultCode::Ok);
    assert_eq!(
        o.bins,
        vec![
            ("n".into(), Value::Int(3)),
            ("t".into(), Value::Str(b"hello".to_vec()))
        ]
    );
    let bad = write(1, vec![Op::Incr(Bin::new("t", Value::Int(1)))]);
    assert_eq!(
        apply(&mut s, &Command::Write(bad)).code,
        ResultCode::IncompatibleType
    );
    let bad = write(
        1,
        vec![Op::Append(Bin::new("n", Value::Str(b"x".to_vec())))],
    );
    assert_eq!(
        apply(&mut s, &Command::Write(bad)).code,
        ResultCode::IncompatibleType
    );
    assert_eq!(
        s.get(&digest(1), 100).unwrap().generation,
        1,
        "failed ops change nothing"
    );
    let wrap = write(1, vec![Op::Incr(Bin::new("n", Value::Int(i64::MAX)))]);
    assert_eq!(apply(&mut s, &Command::Write(wrap)).code, ResultCode::Ok);
}

/// Aerospike creates a missing bin from a modify op's operand whatever its type, and answers
/// 12 when the bin exists with a type the op cannot combine (never 4).
#[test]
fn modify_ops_create_missing_bins_from_any_operand() {
    let mut s = RecordStore::new();
    let ops = vec![
        Op::Append(Bin::new("a", Value::Int(7))),
        Op::Prepend(Bin::new("p", Value::Float(1.5))),
        Op::Incr(Bin::new("i", Value::Str(b"x".to_vec()))),
        Op::Incr(Bin::new("g", Value::GeoJson(vec![0, 0, 0]))),
        Op::ReadAll,
    ];
    let o = apply(&mut s, &Command::Write(write(1, ops)));
    assert_eq!(o.code, ResultCode::Ok);
    assert_eq!(
        o.bins,
        vec![
            ("a".into(), Value::Int(7)),
            ("p".into(), Value::Float(1.5)),
            ("i".into(), Value::Str(b"x".to_vec())),
            ("g".into(), Value::GeoJson(vec![0, 0, 0])),
        ]
    );
    for op in [
        Op::Append(Bin::new("a", Value::Int(1))),
        Op::Append(Bin::new("i", Value::Int(1))),
        Op::Prepend(Bin::new("i", Value::Blob(4, vec![1]))),
        Op::Incr(Bin::new("i", Value::Str(b"y".to_vec()))),
        Op::Incr(Bin::new("a", Value::Float(1.0))),
        Op::Incr(Bin::new("g", Value::Int(1))),
    ] {
        let o = apply(&mut s, &Command::Write(write(1, vec![op.clone()])));
        assert_eq!(o.code, ResultCode::IncompatibleType, "{op:?}");
    }
    assert_eq!(s.get(&digest(1), 100).unwrap().generation, 1);
}

/// A read touch resets the void time from the TTL the record was written with, keeps the
/// generation, and never shortens a void time a later write set.
#[test]
fn read_touch_resets_void_time_keeping_generation() {
    use crate::command::ReadTouchCommand;
    let mut s = RecordStore::new();
    let mut w = write(1, vec![Op::Write(Bin::new("a", Value::Int(1)))]);
    w.expiry = Expiry::Set(110);
    apply(&mut s, &Command::Write(w));
    let touch = |now: u32, ttl: u32| {
        Command::ReadTouch(ReadTouchCommand {
            digest: digest(1),
            ttl,
            now,
            last_update: u64::from(now) * 1000,
        })
    };
    assert_eq!(apply(&mut s, &touch(108, 10)), Outcome::ok(1, 118));
    let r = s.get(&digest(1), 108).unwrap();
    assert_eq!(
        (r.generation, r.void_time, r.last_update),
        (1, 118, 108_000)
    );
    // A void time already later (a write since the read) is left alone.
    assert_eq!(apply(&mut s, &touch(105, 10)).code, ResultCode::KeyBusy);
    assert_eq!(s.get(&digest(1), 108).unwrap().void_time, 118);
    // Gone, or never expiring: nothing to touch.
    assert_eq!(apply(&mut s, &touch(200, 10)).code, ResultCode::NotFound);
    apply(&mut s, &put(2, "a", Value::Int(1)));
    let never = Command::ReadTouch(ReadTouchCommand {
        digest: digest(2),
        ttl: 10,
        now: 100,
        last_update: 0,
    });
    assert_eq!(apply(&mut s, &never).code, ResultCode::KeyBusy);
}

#[test]
fn truncate_removes_records_updated_before_the_cut_off() {
    let mut s = RecordStore::new();
    for (n, set, lut) in [(1, "a", 10), (2, "a", 20), (3, "b", 10), (4, "a", 30)] {
        let mut w = write(n, vec![Op::Write(Bin::new("x", Value::Int(1)))]);
        w.set = set.into();
        w.last_update = lut;
        apply(&mut s, &Command::Write(w));
    }
    let cut = |set: Option<&str>, before| Command::Truncate {
        set: set.map(String::from),
        before,
    };
    assert_eq!(apply(&mut s, &cut(Some("a"), 20)), Outcome::ok(0, 0));
    // Strict: the record written in the cut-off millisecond survives; other sets too.
    assert!(s.get(&digest(1), 0).is_none());
    assert!(s.get(&digest(2), 0).is_some() && s.get(&digest(3), 0).is_some());
    apply(&mut s, &cut(None, 25));
    assert_eq!(s.len(), 1);
    assert!(s.get(&digest(4), 0).is_some());
}

#[test]
fn expire_removes_only_records_still_expired() {
    let mut s = RecordStore::new();
    for (n, void) in [(1, 50), (2, 60), (3, 0), (4, 200)] {
        let mut w = write(n, vec![Op::Write(Bin::new("x", Value::Int(1)))]);
        w.expiry = Expiry::Set(void);
        apply(&mut s, &Command::Write(w));
    }
    let found = s.expired_digests(100, 10);
    assert_eq!(found.len(), 2);
    assert_eq!(s.expired_digests(100, 1).len(), 1);
    // Record 2 is renewed between the sweep and the apply: it stays.
    let mut renew = write(2, vec![Op::Write(Bin::new("x", Value::Int(2)))]);
    renew.now = 100;
    renew.expiry = Expiry::Set(300);
    apply(&mut s, &Command::Write(renew));
    let expire = Command::Expire {
        digests: found,
        now: 100,
    };
    assert_eq!(apply(&mut s, &expire), Outcome::ok(0, 0));
    assert_eq!(s.len(), 3);
    assert_eq!(s.expired_count(), 1);
    assert!(s.get(&digest(2), 100).is_some());
}

#[test]
fn touch_delete_and_empty_records() {
    let mut s = RecordStore::new();
    assert_eq!(
        apply(&mut s, &Command::Write(write(1, vec![Op::Touch]))).code,
        ResultCode::NotFound
    );
    apply(&mut s, &put(1, "a", Value::Int(1)));
    let mut t = write(1, vec![Op::Touch]);
    t.expiry = Expiry::Set(500);
    assert_eq!(apply(&mut s, &Command::Write(t)), Outcome::ok(2, 500));
    // Deleting the last bin deletes the record.
    assert_eq!(apply(&mut s, &put(1, "a", Value::Nil)).code, ResultCode::Ok);
    assert!(s.get(&digest(1), 100).is_none());
    let del = Command::Delete(DeleteCommand {
        digest: digest(1),
        generation: GenerationPolicy::None,
        now: 100,
    });
    assert_eq!(apply(&mut s, &del).code, ResultCode::NotFound);
    apply(&mut s, &put(1, "a", Value::Int(1)));
    assert_eq!(apply(&mut s, &del), Outcome::ok(0, 0));
}

#[test]
fn expired_records_are_absent_and_recreated_fresh() {
    let mut s = RecordStore::new();
    let mut w = write(1, vec![Op::Write(Bin::new("a", Value::Int(1)))]);
    w.expiry = Expiry::Set(150);
    apply(&mut s, &Command::Write(w));
    assert!(s.get(&digest(1), 149).is_some());
    // Aerospike's comparison is strict: the record lives through its void-time second.
    assert!(s.get(&digest(1), 150).is_some());
    assert!(s.get(&digest(1), 151).is_none());
    let mut later = write(1, vec![Op::Write(Bin::new("b", Value::Int(2)))]);
    later.now = 200;
    later.expiry = Expiry::Keep { if_new: 0 };
    assert_eq!(apply(&mut s, &Command::Write(later)), Outcome::ok(1, 0));
    assert_eq!(s.get(&digest(1), 200).unwrap().bin("a"), None);
}

#[test]
fn limits() {
    let mut s = RecordStore::new();
    assert_eq!(
        apply(&mut s, &put(1, "sixteen-chars-xx", Value::Int(1))).code,
        ResultCode::BinName
    );
    let big = put(
        1,
        "a",
        Value::Blob(4, vec![0; crate::record::RECORD_SIZE_MAX + 1]),
    );
    assert_eq!(apply(&mut s, &big).code, ResultCode::RecordTooBig);
    assert!(s.is_empty());
}

#[test]
fn key_mismatch() {
    let mut s = RecordStore::new();
    let mut w = write(1, vec![Op::Write(Bin::new("a", Value::Int(1)))]);
    w.key = Some(UserKey::Int(1));
    apply(&mut s, &Command::Write(w.clone()));
    w.key = Some(UserKey::Int(2));
    assert_eq!(
        apply(&mut s, &Command::Write(w)).code,
        ResultCode::KeyMismatch
    );
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("nan breaks equality", |f| !f.is_nan())
            .prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Blob(4, b)),
        any::<bool>().prop_map(Value::Bool),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let name = prop_oneof![Just("a".to_string()), Just("b".to_string())];
    prop_oneof![
        name.clone().prop_map(Op::Read),
        Just(Op::ReadAll),
        (name.clone(), arb_value()).prop_map(|(n, v)| Op::Write(Bin::new(n, v))),
        (name.clone(), arb_value()).prop_map(|(n, v)| Op::Incr(Bin::new(n, v))),
        (name.clone(), arb_value()).prop_map(|(n, v)| Op::Append(Bin::new(n, v))),
        (name, arb_value()).prop_map(|(n, v)| Op::Prepend(Bin::new(n, v))),
        Just(Op::Touch),
        Just(Op::DeleteAll),
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    let exists = prop_oneof![
        Just(ExistsPolicy::Ignore),
        Just(ExistsPolicy::Create),
        Just(ExistsPolicy::Update),
        Just(ExistsPolicy::Replace),
        Just(ExistsPolicy::CreateOrReplace)
    ];
    let gen = prop_oneof![
        Just(GenerationPolicy::None),
        (0u16..4).prop_map(GenerationPolicy::Eq),
        (0u16..4).prop_map(GenerationPolicy::Gt)
    ];
    prop_oneof![
        (
            0u8..3,
            exists,
            gen.clone(),
            proptest::collection::vec(arb_op(), 0..5),
            any::<bool>(),
            0u32..3
        )
            .prop_map(|(n, exists, generation, ops, respond_all_ops, now)| {
                let mut w = write(n, ops);
                w.exists = exists;
                w.generation = generation;
                w.respond_all_ops = respond_all_ops;
                w.now = now;
                w.expiry = Expiry::Keep { if_new: now + 1 };
                Command::Write(w)
            }),
        (0u8..3, gen, 0u32..3).prop_map(|(n, generation, now)| Command::Delete(DeleteCommand {
            digest: digest(n),
            generation,
            now
        })),
    ]
}

proptest! {
    /// Replicas applying the same commands agree; failures leave no trace; generations count
    /// successful writes; snapshots round-trip.
    #[test]
    fn apply_is_deterministic_and_atomic(cmds in proptest::collection::vec(arb_command(), 1..40)) {
        let mut a = RecordStore::new();
        let mut b = RecordStore::new();
        for cmd in &cmds {
            let before = a.clone();
            let (digest, now) = match cmd { Command::Write(w) => (w.digest, w.now), Command::Delete(d) => (d.digest, d.now), _ => unreachable!("only writes and deletes are generated") };
            let old_gen = a.get(&digest, now).map(|r| r.generation);
            let oa = apply(&mut a, cmd);
            let ob = apply(&mut b, cmd);
            prop_assert_eq!(&oa, &ob);
            if oa.code != ResultCode::Ok {
                // Expired leftovers may be cleaned up; live records must be untouched.
                prop_assert_eq!(before.get(&digest, now), a.get(&digest, now));
            } else if let (Some(r), Command::Write(_)) = (a.get(&digest, now), cmd) {
                prop_assert_eq!(r.generation, old_gen.map_or(1, next_generation));
            }
        }
        prop_assert_eq!(&a, &b);
        let restored = RecordStore::decode_snapshot(&a.encode_snapshot()).unwrap();
        prop_assert_eq!(restored, a);
    }
}

#[test]
fn garbage_snapshots_are_errors() {
    assert!(RecordStore::decode_snapshot(&[1, 2, 3]).is_err());
    assert!(RecordStore::decode_snapshot(&[]).is_err());
}

#[test]
fn delete_set_removes_only_that_set() {
    let mut store = RecordStore::new();
    for (i, set) in ["a", "b", "a", ""].iter().enumerate() {
        let digest = [i as u8; 20];
        let r = Record {
            set: (*set).into(),
            key: None,
            bins: Vec::new(),
            generation: 1,
            void_time: 0,
            last_update: 0,
        };
        store.insert(digest, r);
    }
    let o = apply(&mut store, &Command::DeleteSet { set: "a".into() });
    assert_eq!(o.code, ResultCode::Ok);
    assert_eq!(store.len(), 2);
    assert!(store.iter().all(|(_, r)| r.set() != "a"));
    // A catalog command is refused by a data group and changes nothing.
    let o = apply(
        &mut store,
        &Command::Catalog(crate::catalog::CatalogCommand::DropNamespace { name: "x".into() }),
    );
    assert_eq!(o.code, ResultCode::Parameter);
    assert_eq!(store.len(), 2);
}

#[test]
fn a_closed_group_refuses_changes_and_stays_closed_across_snapshots() {
    let mut s = RecordStore::new();
    assert_eq!(
        apply(&mut s, &put(1, "a", Value::Int(1))).code,
        ResultCode::Ok
    );
    assert_eq!(apply(&mut s, &Command::Close).code, ResultCode::Ok);
    assert_eq!(
        apply(&mut s, &put(2, "a", Value::Int(1))).code,
        ResultCode::Namespace
    );
    let truncate = Command::Truncate {
        set: None,
        before: u64::MAX,
    };
    assert_eq!(apply(&mut s, &truncate).code, ResultCode::Namespace);
    // what was there stays readable
    assert!(s.get(&digest(1), 100).is_some());
    let mut restored = RecordStore::decode_snapshot(&s.encode_snapshot()).unwrap();
    assert!(restored.is_closed());
    assert_eq!(
        apply(&mut restored, &put(3, "a", Value::Int(1))).code,
        ResultCode::Namespace
    );
    assert!(
        !RecordStore::decode_snapshot(&RecordStore::new().encode_snapshot())
            .unwrap()
            .is_closed()
    );
}
