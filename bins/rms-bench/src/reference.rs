//! The references each scenario is measured against, in the same run:
//!
//! - a bare tokio-tungstenite server (`rms-bench reference-server broadcast|echo`, a process of
//!   its own like rms-node): `broadcast` sends every text message it receives to every connection,
//!   `echo` back to its sender only;
//! - a plain rusqlite loop writing what the master writes per event (log row, stock, audit row),
//!   in batches, with the same journal and synchronous mode;
//! - opening a database file and `PRAGMA quick_check`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Runs a reference WebSocket server until killed. `mode` is `broadcast` or `echo`.
pub fn serve(mode: &str) -> anyhow::Result<()> {
    let broadcast = match mode {
        "broadcast" => true,
        "echo" => false,
        other => anyhow::bail!("unknown reference mode {other:?}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("reference listening on ws://{}", listener.local_addr()?);
        let peers: Arc<Mutex<Vec<mpsc::UnboundedSender<String>>>> = Arc::default();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let peers = Arc::clone(&peers);
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut source) = socket.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                if broadcast {
                    lock(&peers).push(tx.clone());
                }
                tokio::spawn(async move {
                    while let Some(text) = rx.recv().await {
                        if sink.send(Frame::text(text)).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(Frame::Text(text))) = source.next().await {
                    if broadcast {
                        lock(&peers).retain(|peer| peer.send(text.to_string()).is_ok());
                    } else if tx.send(text.to_string()).is_err() {
                        break;
                    }
                }
            });
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The rows the master writes per event, in tables shaped like its own: no more, no less.
const SCHEMA: &str = "
CREATE TABLE events (event_id TEXT PRIMARY KEY, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    master_seq INTEGER UNIQUE, status TEXT NOT NULL, payload TEXT NOT NULL, hlc INTEGER NOT NULL);
CREATE TABLE products (sku TEXT PRIMARY KEY, stock INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, operation TEXT NOT NULL,
    event_id TEXT, outcome TEXT NOT NULL, details TEXT NOT NULL);
INSERT INTO products VALUES ('bench', 1000000000, 1);
";

/// Writes `events` sale events in transactions of `batch`, with WAL and `synchronous=FULL` as the
/// master does. Returns the wall time.
pub fn sqlite_loop(dir: &Path, events: usize, batch: usize) -> anyhow::Result<Duration> {
    let path = dir.join("reference.db");
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    let payload = r#"{"kind":"sale_recorded","sale_id":"2-1","lines":[{"sku":"bench","qty":1,"price_cents":100}]}"#;
    let started = Instant::now();
    let mut seq = 0_u64;
    while (seq as usize) < events {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut event =
                tx.prepare_cached("INSERT INTO events VALUES (?1, 2, ?2, ?2, 'synced', ?3, ?2)")?;
            let mut stock =
                tx.prepare_cached("UPDATE products SET stock = stock - 1 WHERE sku = 'bench'")?;
            let mut audit = tx.prepare_cached(
                "INSERT INTO audit_log (at, operation, event_id, outcome, details)
                 VALUES ('2026-11-26T00:00:00.000Z', 'push_received', ?1, 'ok', '{}')",
            )?;
            for _ in 0..batch.min(events - seq as usize) {
                seq += 1;
                let id = format!("2-{seq}");
                event.execute(params![id, seq as i64, payload])?;
                stock.execute([])?;
                audit.execute([&id])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

/// Opens the database at `path` and runs `PRAGMA quick_check`: the floor of a cold start.
pub fn open_and_check(path: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let conn = Connection::open(path)?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    anyhow::ensure!(verdict == "ok", "quick_check: {verdict}");
    Ok(started.elapsed())
}
