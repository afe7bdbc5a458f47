//! The Rust `aerospike` crate (2.1) puts and gets against a real 3-node cluster.

mod common;

use aerospike::{as_bin, as_key, Bins, Client, ClientPolicy, ReadPolicy, Value, WritePolicy};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_puts_and_gets() {
    let cluster = common::Cluster::start(3);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let host = format!("127.0.0.1:{}", cluster.port(2));
    let client = Client::new(&ClientPolicy::default(), &host)
        .await
        .expect("connect");

    // The client learns the other nodes from its seed's peer list at its next tend.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.nodes().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "client never discovered all nodes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wp = WritePolicy::default();
    let rp = ReadPolicy::default();
    // The first writes may race the groups' first elections: retry within a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let key0 = as_key!("test", "rust", 0);
    while client.put(&wp, &key0, &[as_bin!("v", 0)]).await.is_err() {
        assert!(Instant::now() < deadline, "cluster never accepted a write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..100i64 {
        let key = as_key!("test", "rust", i);
        let bins = [
            as_bin!("v", i),
            as_bin!("s", format!("value-{i}")),
            as_bin!("f", i as f64 / 2.0),
        ];
        client
            .put(&wp, &key, &bins)
            .await
            .unwrap_or_else(|e| panic!("put {i}: {e}"));
    }
    for i in 0..100i64 {
        let key = as_key!("test", "rust", i);
        let rec = client
            .get(&rp, &key, Bins::All)
            .await
            .unwrap_or_else(|e| panic!("get {i}: {e}"));
        assert_eq!(rec.bins.get("v"), Some(&Value::Int(i)));
        assert_eq!(
            rec.bins.get("s"),
            Some(&Value::String(format!("value-{i}")))
        );
        assert_eq!(rec.bins.get("f"), Some(&Value::from(i as f64 / 2.0)));
        assert_eq!(rec.generation, if i == 0 { 2 } else { 1 });
    }
    let rec = client
        .get(&rp, &as_key!("test", "rust", 7), ["s"])
        .await
        .expect("select");
    assert_eq!(rec.bins.len(), 1);
    let missing = client
        .get(&rp, &as_key!("test", "rust", "nope"), Bins::All)
        .await;
    assert!(missing.is_err(), "a missing record is an error");
    assert!(client
        .delete(&wp, &as_key!("test", "rust", 1))
        .await
        .expect("delete"));
    client.close().await.ok();
}
