//! Raw TCP clients: a slow or stalled request that the server must cut
//! off, and a request it must answer before reading all of it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::H;

fn addr(h: &H) -> String {
    h.base.trim_start_matches("http://").to_owned()
}

/// Writes `bytes` and waits (up to a minute) for the server to close.
pub(crate) async fn raw_closed(h: &H, bytes: &[u8]) -> Result<(), String> {
    let s = tokio::net::TcpStream::connect(addr(h))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut r, mut w) = s.into_split();
    w.write_all(bytes)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let within = Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    // A slowloris client: one more byte every two seconds, never the end.
    let dribble = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if w.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        tokio::select! {
            () = read_all => {}
            () = dribble => {}
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .map_err(|_| format!("the server still held the connection after {within:?}"))?;
    if h.up.lock().await.alive() {
        Ok(())
    } else {
        Err("the connection closed because the process died".into())
    }
}

/// Writes `bytes` and reads one answer: (status, content type, body).
pub(crate) async fn raw_answer(
    h: &H,
    bytes: &[u8],
    within: Duration,
) -> Result<(u16, String, String), String> {
    let mut s = tokio::net::TcpStream::connect(addr(h))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // The server may answer and close before everything is written.
    let _ = s.write_all(bytes).await;
    let mut data = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = find(&data, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    return;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| format!("no answer within {within:?}"))?;
    let end = find(&data, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "the connection closed without an answer ({} bytes)",
            data.len()
        )
    })?;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&data[end + 4..]).into_owned();
    Ok((status, ct, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
