//! A real multi-process Strato cluster on loopback for Rust integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub base: u16,
    pub nodes: usize,
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Start `nodes` strato processes that form one cluster; returns once all answer info.
    pub fn start(nodes: usize) -> Cluster {
        let base = free_base(nodes);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Cluster {
            base,
            nodes,
            dir,
            children: Vec::new(),
        };
        for i in 1..=nodes {
            let child = c.spawn(i);
            c.children.push(Some(child));
        }
        c
    }

    /// The last lines of node `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
            .unwrap_or_else(|e| format!("(no log: {e})"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn port(&self, i: usize) -> u16 {
        self.base + 10 * (i as u16 - 1)
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    fn spawn(&self, i: usize) -> Child {
        let seeds: Vec<String> = (1..=self.nodes)
            .map(|j| format!("127.0.0.1:{}", self.port(j) + 2))
            .collect();
        let log =
            std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_strato"))
            .args([
                "serve",
                "--node-id",
                &i.to_string(),
                "--port",
                &self.port(i).to_string(),
            ])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args([
                "--seeds",
                &seeds.join(","),
                "--bootstrap-expect",
                &self.nodes.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn strato")
    }

    /// Ask node `i` one info command.
    pub async fn info(&self, i: usize, cmd: &str) -> anyhow::Result<String> {
        let host = format!("127.0.0.1:{}", self.port(i));
        let answers =
            strato::info_client::request(&host, &[cmd.to_string()], Duration::from_secs(2)).await?;
        Ok(answers
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_default())
    }

    /// Wait until every node holds its groups (partition-generation ≥ 0).
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for i in 1..=self.nodes {
            loop {
                if let Ok(v) = self.info(i, "partition-generation").await {
                    if v.parse::<i64>().is_ok_and(|g| g >= 0) {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} not ready within {timeout:?}; its log ends with:\n{}",
                    self.log_tail(i)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Clients route by the leaders' claims: wait until every partition has one.
        while self.masters_claimed().await < 4096 {
            assert!(
                Instant::now() < deadline,
                "partitions without a leader after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many partitions some node claims to lead (column 0 of `replicas`).
    pub async fn masters_claimed(&self) -> u32 {
        use base64::Engine;
        let mut claimed = [0u8; 512];
        for i in 1..=self.nodes {
            let Ok(answer) = self.info(i, "replicas-leaders").await else {
                continue;
            };
            let Some((_, cols)) = answer.split(';').next().and_then(|ns| ns.split_once(':')) else {
                continue;
            };
            let Some(master) = cols.split(',').nth(2) else {
                continue;
            };
            let Ok(bitmap) = base64::engine::general_purpose::STANDARD.decode(master) else {
                continue;
            };
            for (c, b) in claimed.iter_mut().zip(bitmap) {
                *c |= b;
            }
        }
        claimed.iter().map(|b| b.count_ones()).sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A base port whose node ports (each node: base + 10·k, +1, +2, TCP and UDP) are free,
/// below the kernel's ephemeral range (32768 and up) so outgoing connections cannot take
/// them between the check and the bind. The start depends on the process id, spreading
/// concurrent test processes.
fn free_base(nodes: usize) -> u16 {
    let span = 10 * nodes as u16;
    let first = (std::process::id() % 120) as u16;
    (0..120u16)
        .map(|k| 20_000 + (first + k) % 120 * 100)
        .find(|&base| {
            (base..base + span).all(|p| {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            })
        })
        .expect("no free port range between 20000 and 32000")
}
