//! A running node's shared state: identity, database, clock.

use std::path::PathBuf;
use std::sync::Arc;

use rms_domain::{AuditEntry, Device, DeviceId, Operation, Outcome, Role, rfc3339_from_ms};
use rms_storage::{StorageError, Store, local};
use serde_json::json;

use crate::clock::Clock;
use crate::db::Db;

/// What a node is told at start. The binary fills it from flags, environment and config file.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub device_id: DeviceId,
    pub name: String,
    /// How peers reach this node, e.g. `http://127.0.0.1:7878`.
    pub advertise: String,
    pub priority: i32,
    /// `None` keeps the database in memory (tests).
    pub data_dir: Option<PathBuf>,
    pub peers: Vec<String>,
    /// When set, every request must carry `Authorization: Bearer <key>`.
    pub store_key: Option<String>,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot record the start: {0}")]
    Db(#[from] crate::db::DbError),
}

/// Cheap to clone: every REST handler holds one.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    db: Db,
    role: Role,
}

impl Node {
    /// Opens the database (creating and migrating it), records the start in the roster and the
    /// audit log, and returns the node. A node with no peers is the master of its store.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        let device_id = config.device_id;
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || match data_dir {
            Some(dir) => Store::open(&dir, device_id),
            None => Store::open_in_memory(device_id),
        })
        .await
        .map_err(|e| StartError::Db(crate::db::DbError::Panicked(e.to_string())))??;
        let role = Role::Master;
        let node = Node {
            inner: Arc::new(Inner {
                db: Db::new(store),
                config,
                role,
            }),
        };
        let me = node.device();
        let now_ms = node.now_ms();
        let state = node
            .db()
            .write(move |tx| local::record_startup(tx, &me, now_ms))
            .await?;
        log::info!(
            "device {} ({}) started as {} in term {}",
            device_id,
            node.config().name,
            role.as_str(),
            state.term()
        );
        Ok(node)
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub fn role(&self) -> Role {
        self.inner.role
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.config.clock.now_ms()
    }

    /// This node as a roster entry.
    pub fn device(&self) -> Device {
        let config = &self.inner.config;
        Device {
            device_id: config.device_id,
            name: config.name.clone(),
            role: self.role(),
            advertise: config.advertise.clone(),
            priority: config.priority,
            online: true,
            last_seen: Some(rfc3339_from_ms(self.now_ms())),
        }
    }

    /// Records a clean stop in the audit log.
    pub async fn record_shutdown(&self) -> Result<(), crate::db::DbError> {
        let entry = AuditEntry {
            id: 0,
            at: rfc3339_from_ms(self.now_ms()),
            operation: Operation::Shutdown,
            device_id: Some(self.inner.config.device_id),
            user_id: None,
            event_id: None,
            outcome: Outcome::Ok,
            details: json!({ "role": self.role().as_str() }),
        };
        self.db()
            .write(move |tx| local::record_audit(tx, &entry))
            .await?;
        Ok(())
    }
}
