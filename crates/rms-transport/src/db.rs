//! [`Db`]: the async adapter over rms-storage's [`Store`]: repository calls on tokio's blocking
//! pool, at most [`DB_CALLS_MAX`] at once.
//!
//! **Invariant:** it reads only. Every write of a running node goes through the driver thread
//! (`driver.rs`), so a write from an API handler does not compile.

use std::sync::Arc;

use rms_storage::Connection;
use rms_storage::{StorageError, Store};
use tokio::sync::Semaphore;

/// Most repository calls running at once on the blocking pool.
pub const DB_CALLS_MAX: usize = 16;

/// The async adapter over [`Store`]: runs each call on tokio's blocking pool, at most
/// [`DB_CALLS_MAX`] at once, so SQLite never blocks the runtime's worker threads.
#[derive(Clone, Debug)]
pub struct Db {
    store: Arc<Store>,
    permits: Arc<Semaphore>,
}

/// Why a database call through [`Db`] did not give its answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The call ran and SQLite or the store refused it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The call panicked (a bug) or its blocking task was cancelled at shutdown.
    #[error("a database call panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    /// The adapter's semaphore was closed. Nothing closes it while a `Db` exists; the variant
    /// keeps a closed semaphore an error rather than a panic.
    #[error("the database adapter is shut down")]
    Closed,
}

impl Db {
    /// The adapter over `store`.
    pub fn new(store: Arc<Store>) -> Db {
        Db {
            store,
            permits: Arc::new(Semaphore::new(DB_CALLS_MAX)),
        }
    }

    /// Whether the last write of the node failed because the disk is full.
    pub fn disk_full(&self) -> bool {
        self.store.disk_full()
    }

    /// Runs `f` on a reader connection (see [`Store::read`]).
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        self.blocking(move || store.read(f)).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| DbError::Closed)?;
        match tokio::task::spawn_blocking(f).await {
            Ok(result) => Ok(result?),
            Err(join) => Err(DbError::Panicked(join)),
        }
    }
}
