//! The PostgreSQL connection pool, and the schema: versioned migrations applied at start, in one
//! transaction under an advisory lock, so replicas that start together apply each once.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::HqError;

/// The append-only list of migrations; `hq_migrations` records which are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_head_office.sql"),
    include_str!("../migrations/0002_chains.sql"),
];

/// Connections in the pool (each replica's).
pub const POOL_SIZE_MAX: usize = 16;

/// How long a request waits for a connection (or for one to be made) before it is answered
/// `503`: a flood cannot queue without bound.
pub const POOL_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// An advisory lock key for the migrations ("rms-hq" in ASCII).
const MIGRATION_LOCK: i64 = 0x726d_732d_6871;

/// Head office's database: a pool of connections.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// A pool for `url` (`postgresql://...` or `host=/run/postgresql dbname=hq`); connects
    /// lazily. Connections are plain: run PostgreSQL on a Unix socket or a private network
    /// (docs/HQ.md).
    pub fn connect(url: &str) -> Result<Db, HqError> {
        let config = tokio_postgres::Config::from_str(url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE_MAX)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_MAX))
            .create_timeout(Some(POOL_WAIT_MAX))
            .build()?;
        Ok(Db { pool })
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, HqError> {
        Ok(self.pool.get().await?)
    }

    /// Applies the migrations this database lacks. Refuses a database made by a newer build.
    pub async fn migrate(&self) -> Result<(), HqError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS hq_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let found: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM hq_migrations", &[])
            .await?
            .get(0);
        let supported = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        if found > supported {
            return Err(HqError::NewerSchema { found, supported });
        }
        for (version, sql) in (1..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO hq_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            log::info!("applied head-office migration {version}");
        }
        tx.commit().await?;
        Ok(())
    }
}
