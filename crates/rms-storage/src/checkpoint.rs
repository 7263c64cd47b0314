//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1000 pages, on
//! the committing thread: on a master that is the sync driver, the one thread every write of the
//! store waits for (8 % of its time under a sales rush, measured with `perf`). The writer
//! connection turns it off (`wal_autocheckpoint = 0`) and this thread copies the WAL back into
//! the database instead, after commits, at most every [`INTERVAL`], with `PASSIVE` checkpoints
//! that never make the writer or a reader wait.
//!
//! **On crash:** a checkpoint moves committed pages from the WAL into the database file; SQLite
//! recovers a checkpoint cut short from the WAL at the next open. Nothing committed depends on it.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StorageError;

/// Shortest time between two checkpoints: each copies what the commits since the last one wrote.
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    /// Commits since the thread last looked.
    commits: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// The checkpoint thread of one database file; stopped (after a last checkpoint) when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, with a connection of its own to `path`.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("rms-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .map_err(|source| StorageError::DataDir {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread that a transaction committed (cheap: a lock and a notify).
    pub(crate) fn committed(&self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.commits += 1;
        self.shared.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.stop = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        let stop = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            while state.commits == 0 && !state.stop {
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.commits = 0;
            state.stop
        };
        if let Err(err) = checkpoint(conn) {
            log::warn!("WAL checkpoint failed (retried after the next commit): {err}");
        }
        if stop {
            return;
        }
        // The commits of the next `INTERVAL` wait for one checkpoint; a stop does not.
        let state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        drop(shared.wake.wait_timeout_while(state, INTERVAL, |s| !s.stop));
    }
}

/// One `PASSIVE` checkpoint: copies what it can without waiting for anyone.
fn checkpoint(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
