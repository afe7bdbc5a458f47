//! A minimal info client: what `strato info` and the tests use to ask a node questions.

use crate::protocol::frame::{encode_frame, read_frame, MAX_INFO_BODY, TYPE_INFO};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Send `commands` to `host` and return `(command, value)` pairs in answer order.
pub async fn request(
    host: &str,
    commands: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<(String, String)>> {
    let fut = async {
        let mut s = TcpStream::connect(host)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {host}: {e}"))?;
        let mut body = String::new();
        for c in commands {
            body.push_str(c);
            body.push('\n');
        }
        s.write_all(&encode_frame(TYPE_INFO, body.as_bytes()))
            .await?;
        let f = read_frame(&mut s, MAX_INFO_BODY)
            .await
            .map_err(|e| anyhow::anyhow!("bad answer from {host}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("{host} closed the connection without answering"))?;
        let text = String::from_utf8_lossy(&f.body).into_owned();
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('\t').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {host} within {timeout:?}"))?
}
