//! Opening the database: connection pragmas, migrations, the writer and the reader pool.
//!
//! **Dependencies:** it creates and checks the `node_state` row (`crate::node_state`) and
//! nothing else of the crate; `crate::incarnation` begins its numbering on a [`Store`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rms_domain::DeviceId;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::StorageError;
use crate::node_state;

/// The append-only list of migrations; `PRAGMA user_version` is how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema.sql"),
    include_str!("../../../migrations/0002_sales_from_events.sql"),
    include_str!("../../../migrations/0003_events_keyed_by_device_and_seq.sql"),
    include_str!("../../../migrations/0004_accepted_seq.sql"),
    include_str!("../../../migrations/0005_device_trust.sql"),
    include_str!("../../../migrations/0006_change_feed.sql"),
    include_str!("../../../migrations/0007_journal.sql"),
    include_str!("../../../migrations/0008_journal_heads.sql"),
    include_str!("../../../migrations/0009_event_chain.sql"),
    include_str!("../../../migrations/0010_incarnations.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits on another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most concurrent readers.
pub const READERS_MAX: u32 = 8;

/// Pages [`Store::backup_in_memory`] copies per step of SQLite's online backup.
const BACKUP_PAGES_PER_STEP: std::ffi::c_int = 1024;

/// The file name of the database inside a node's data directory.
pub const DB_FILE_NAME: &str = "rms.db";

/// A device's database: one writer connection behind a mutex, and a pool of readers.
///
/// Writes queue on the mutex inside the process rather than spinning on SQLite's busy handler.
pub struct Store {
    writer: Mutex<Connection>,
    /// The last write failed because the disk is full (cleared by the next write that succeeds).
    disk_full: AtomicBool,
    readers: Option<Pool<SqliteConnectionManager>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) `data_dir/rms.db` for `device_id`, applies pending migrations,
    /// and refuses a database that is newer than this build or belongs to another device.
    pub fn open(data_dir: &Path, device_id: DeviceId) -> Result<Store, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE_NAME);
        let mut writer = Connection::open(&path)?;
        init_writer(&writer)?;
        migrate(&mut writer)?;
        node_state::init(&mut writer, device_id)?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(init_reader);
        let readers = Pool::builder()
            .max_size(READERS_MAX)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Store {
            writer: Mutex::new(writer),
            disk_full: AtomicBool::new(false),
            readers: Some(readers),
            path: Some(path),
        })
    }

    /// A private in-memory database (tests, simulation). Reads share the writer connection.
    pub fn open_in_memory(device_id: DeviceId) -> Result<Store, StorageError> {
        let mut writer = Connection::open_in_memory()?;
        init_writer(&writer)?;
        migrate(&mut writer)?;
        node_state::init(&mut writer, device_id)?;
        Ok(Store {
            writer: Mutex::new(writer),
            disk_full: AtomicBool::new(false),
            readers: None,
            path: None,
        })
    }

    /// A copy of this database in memory, marked as [`backup_into`] marks its copies (a node
    /// started on it begins a new incarnation, `crate::incarnation`): a restore for devices whose
    /// data lives in memory (embedded tills' tests, the simulator's restored device). The copy
    /// is as of one moment: SQLite's online backup of the whole database, under the writer's lock
    /// for an in-memory store, from a reader's snapshot for one on disk. **On crash:** nothing
    /// is written to this database.
    pub fn backup_in_memory(&self) -> Result<Store, StorageError> {
        let mut copy = Connection::open_in_memory()?;
        self.read(|conn| {
            rusqlite::backup::Backup::new(conn, &mut copy)?.run_to_completion(
                BACKUP_PAGES_PER_STEP,
                Duration::ZERO,
                None,
            )?;
            Ok(())
        })?;
        init_writer(&copy)?;
        migrate(&mut copy)?;
        node_state::mark_backup_copy(&copy)?;
        Ok(Store {
            writer: Mutex::new(copy),
            disk_full: AtomicBool::new(false),
            readers: None,
            path: None,
        })
    }

    /// The database file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if it returns `Ok`, rolled back
    /// (nothing written) if it returns `Err` or panics. Returns once the commit is durable.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        // A panic in an earlier write rolled its transaction back when it unwound, so the
        // connection is consistent even when the mutex is poisoned.
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StorageError::from)
            .and_then(|tx| {
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        match &result {
            Ok(_) => self.disk_full.store(false, Ordering::Relaxed),
            Err(err) if err.is_disk_full() => self.disk_full.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// Whether the last write failed because the disk is full: the node is degraded until a
    /// write succeeds again.
    pub fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    /// Runs `f` on a reader connection (a snapshot of the last commit).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match &self.readers {
            Some(pool) => f(&*pool.get()?),
            None => f(&self
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())),
        }
    }
}

fn init_writer(conn: &Connection) -> Result<(), StorageError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` answers with the mode in force; in-memory databases stay "memory".
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    // FULL: a commit is on disk before `write` returns, so an answered write survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn init_reader(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(())
}

/// Applies every migration past `PRAGMA user_version` in one transaction. A second call is a
/// no-op; a database newer than [`SCHEMA_VERSION`] is refused and left untouched.
pub fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let applied = usize::try_from(found).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        log::info!("applying database migration {}", index + 1);
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Runs `PRAGMA integrity_check` and returns its verdict (`"ok"` when healthy).
pub fn integrity_check(conn: &Connection) -> Result<String, StorageError> {
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows.join("; "))
}

/// Copies the database of `data_dir` into a new file `dest` while a node may be running on it
/// (`VACUUM INTO` on a read-only connection: a consistent snapshot as of one moment, compacted,
/// without the WAL), marked as a copy (`crate::incarnation`: a node started on it begins a new
/// incarnation). `dest` must not exist. **On crash:** the copy is made and marked as
/// `<dest>.partial` and linked to `dest` only once it is complete, marked and
/// `integrity_check`ed: `dest` exists only as a good, marked backup (a `.partial` left behind is
/// removed by the next backup to that name).
pub fn backup_into(data_dir: &Path, dest: &Path) -> Result<(), StorageError> {
    let source = data_dir.join(DB_FILE_NAME);
    if !source.exists() {
        return Err(StorageError::NotFound {
            what: format!("database {}", source.display()),
        });
    }
    let refuse = |kind, why: &str| StorageError::DataDir {
        path: dest.display().to_string(),
        source: std::io::Error::new(kind, why),
    };
    if dest.exists() {
        let why = "the backup file exists already; it is never overwritten";
        return Err(refuse(std::io::ErrorKind::AlreadyExists, why));
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
    if parent.is_some_and(|p| !p.is_dir()) {
        let why = "its directory does not exist (create it first)";
        return Err(refuse(std::io::ErrorKind::NotFound, why));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let partial_text = partial
        .to_str()
        .ok_or_else(|| refuse(std::io::ErrorKind::InvalidInput, "not a UTF-8 path"))?;
    match std::fs::remove_file(&partial) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(StorageError::DataDir {
                path: partial.display().to_string(),
                source: err,
            });
        }
        _ => {}
    }
    let conn = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute("VACUUM INTO ?1", [partial_text])?;
    // A node started on the copy is a restored device: it begins a new incarnation before it
    // makes any event, so that its events never take the numbers of those made after the copy.
    // (A database an older build wrote is migrated first, as its start would.)
    let mut copy = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    migrate(&mut copy)?;
    node_state::mark_backup_copy(&copy)?;
    let verdict = integrity_check(&copy)?;
    drop(copy);
    if verdict != "ok" {
        return Err(StorageError::corrupt("backup", verdict));
    }
    // A link, not a rename: it fails rather than replace a `dest` made meanwhile.
    let linked = std::fs::hard_link(&partial, dest).and_then(|()| std::fs::remove_file(&partial));
    linked.map_err(|source| StorageError::DataDir {
        path: dest.display().to_string(),
        source,
    })
}
