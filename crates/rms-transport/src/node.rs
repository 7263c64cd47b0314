//! A running node: identity, database, the sync driver and the links to peers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rms_domain::{Device, DeviceId, Role, rfc3339_from_ms};
use rms_security::identity::{Identity, IdentityError};
use rms_security::pairing::Pairing;
use rms_storage::local::{self, Command};
use rms_storage::{StorageError, Store};
use rms_sync::{HandoverError, Message, Notification, PeerInfo, SyncConfig};
use tokio::sync::{broadcast, oneshot};

use crate::clock::Clock;
use crate::db::{Db, DbError};
use crate::driver;
use crate::input::{self, Driver, Input, LocalDone, NodeError};
use crate::log_head::{LogHead, LogWatch};
use crate::net::connector::Connector;
use crate::net::dial::Dialer;
use crate::net::join::{self, JoinError, Joined};
use crate::net::link::Links;
use crate::net::trust::TrustBook;
use crate::status::{Status, StatusCell, Stopping};
use crate::tasks::changes::{ChangeFeed, ChangeId, ChangeStream, FutureChangeId};
use crate::tasks::hq::{self, HeadOffice, UplinkLimits, UplinkState, UplinkStatus};
use crate::tasks::{Handles, SIGN_INTERVAL, journal};

/// What a node is told at start. The binary fills it from flags, environment and config file.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This device's id in its store (1..=65534; 65535 is head office's origin); a database opened with
    /// another refuses it.
    pub device_id: DeviceId,
    /// This device's name, as peers and the status page show it.
    pub name: String,
    /// How peers reach this node's store port, e.g. `https://10.0.0.11:7879`.
    pub advertise: String,
    /// This device's rank in elections and for [`NodeConfig::reclaim`]: among equally complete
    /// logs the higher priority becomes master, then the lower device id.
    pub priority: i32,
    /// `None` keeps the database in memory (tests).
    pub data_dir: Option<PathBuf>,
    /// Base URLs of other nodes of the store. None: this device is a store of its own.
    pub peers: Vec<String>,
    /// When set, every API request must carry `Authorization: Bearer <key>`, and a device
    /// that proves the key while the upgrade window is open is trusted on first use.
    pub store_key: Option<String>,
    /// The store-key window: `None` opens it for [`STORE_KEY_WINDOW_MS`] on a database made by
    /// the store-key release (the upgrade) and leaves it as it is otherwise (closed on a new
    /// device); `Some(ms)` opens it for `ms` from this start (`Some(0)` closes it).
    pub store_key_window_ms: Option<u64>,
    /// How often (ms) a client pushes, pulls and relays and a master broadcasts, each time
    /// jittered by up to 10%; with [`NodeConfig::eager_sync`], the retry interval.
    pub sync_interval_ms: u64,
    /// How often (ms) this device sends its heartbeat to every peer.
    pub heartbeat_interval_ms: u64,
    /// How long (ms) a peer counts as alive after it was last heard, and how long a client
    /// waits for its master's heartbeat before it holds a pre-vote.
    pub master_timeout_ms: u64,
    /// Take the master role back (in a new term) once caught up, when this device outranks
    /// the master (`--reclaim`).
    pub reclaim: bool,
    /// How often a running node hashes its copy of the master log again from the start, to
    /// notice a change made to its file while it runs (`log_watch`).
    pub log_recheck_interval_ms: u64,
    /// Push each sale as it is made and broadcast each decided entry at once, instead of every
    /// sync interval (`rms_sync::SyncConfig::eager_sync`).
    pub eager_sync: bool,
    /// Sync with peers over REST (`POST /sync/exchange`) instead of WebSocket.
    pub sync_over_rest: bool,
    /// The node's wall clock: every time the node records is read from it.
    pub clock: Clock,
    /// Head office (issue #15): while this device is master, its log goes up and the
    /// catalogue comes down ([`crate::tasks::hq`]).
    pub head_office: Option<HeadOffice>,
    /// Batch sizes and heartbeat of the uplink (tests and benchmarks shorten them).
    pub uplink_limits: UplinkLimits,
}

impl NodeConfig {
    /// A lone device with the default intervals (tests, embedding).
    pub fn lone(device_id: DeviceId, name: &str) -> NodeConfig {
        NodeConfig {
            device_id,
            name: name.to_owned(),
            advertise: "http://127.0.0.1:7878".into(),
            priority: 0,
            data_dir: None,
            peers: Vec::new(),
            store_key: None,
            store_key_window_ms: None,
            sync_interval_ms: 30_000,
            heartbeat_interval_ms: 1_000,
            master_timeout_ms: 3_000,
            reclaim: false,
            log_recheck_interval_ms: 3_600_000,
            eager_sync: true,
            sync_over_rest: false,
            clock: Clock::default(),
            head_office: None,
            uplink_limits: UplinkLimits::default(),
        }
    }
}

/// Why [`Node::start`] failed. Nothing runs after it: no link, no task, no driver.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database cannot be opened or migrated: it is another device's, it is newer than this
    /// build, the device's clock is behind it or unset, or SQLite failed.
    #[error("cannot open the database: {0}")]
    Storage(#[from] StorageError),
    /// This device's key and certificate cannot be read or made in the data directory.
    #[error("cannot load or make this device's identity: {0}")]
    Identity(#[from] IdentityError),
    /// The blocking task that opens the database and records the start panicked or was
    /// cancelled, or the read of the devices it knew (to reach them again) failed.
    #[error("cannot record the start: {0}")]
    Db(#[from] DbError),
    /// The driver thread cannot be spawned, or the sync core refused to start on this
    /// database.
    #[error("cannot start the sync driver: {0}")]
    Driver(#[from] driver::DriverError),
    /// The blocking task that starts the driver thread panicked or was cancelled.
    #[error("the task that starts the sync driver failed: {0}")]
    DriverTask(#[source] tokio::task::JoinError),
}

/// How long the store-key window stays open by default: a day to upgrade every device.
pub const STORE_KEY_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// How long a critical sale on a client waits for the master's verdict before answering 202.
pub const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a stop waits for the driver to finish its queued inputs.
const DRIVER_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cheap to clone: every REST handler holds one.
#[derive(Clone, Debug)]
pub struct Node {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    /// What the background tasks hold too: the database, the driver, its status, the stop flag,
    /// the trust list, the clock.
    handles: Handles,
    links: Links,
    notifications: broadcast::Sender<Notification>,
    identity: Arc<Identity>,
    pairing: Pairing,
    dialer: Dialer,
    connector: Connector,
    thread: Mutex<Option<driver::DriverThread>>,
    /// Head office's uplink, when one is configured.
    uplink: Option<UplinkState>,
    changes: ChangeFeed,
    /// The head of the log chain, as the log watch last followed it.
    log_watch: Arc<LogWatch>,
}

impl Node {
    /// Opens the database (creating and migrating it), records the start, starts the sync driver,
    /// the links to the configured peers and the background tasks. A node with no peers is the
    /// master of its store. Built in one step: when this returns, every part is running.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        let device_id = config.device_id;
        let boot_ms = config.clock.now_ms();
        let (identity, store, trust) = open(&config).await?.parts(&config);
        log::info!("device {device_id} is {}", identity.fingerprint());
        let db = Db::new(Arc::clone(&store));

        let known: Vec<Device> = db
            .read(rms_storage::devices::list)
            .await?
            .into_iter()
            .filter(|d| d.device_id != device_id)
            .collect();
        let links = Links::default();
        let status = StatusCell::default();
        let stopping = Stopping::new();
        let (driver, inputs) = input::channel();
        let (notifications, _) = broadcast::channel(driver::NOTIFICATIONS_MAX);
        let (dialer, connector) =
            dial_peers(&config, &identity, &trust, &links, &driver, &stopping);
        let log_watch = Arc::new(LogWatch::default());
        let parts = driver::Parts {
            notifications: notifications.clone(),
            config: sync_config(&config, !known.is_empty(), config.clock.now_ms()),
            store,
            clock: config.clock,
            links: links.clone(),
            connector: connector.clone(),
            status: status.clone(),
            trust: trust.clone(),
            log_watch: Arc::clone(&log_watch),
        };
        let thread = tokio::task::spawn_blocking(move || driver::spawn(inputs, parts))
            .await
            .map_err(StartError::DriverTask)??;
        for peer in &config.peers {
            connector.ensure(peer);
        }
        // The devices this node knew before it stopped, reached again without waiting for gossip.
        for device in &known {
            connector.ensure_device(&device.advertise, device.device_id);
        }
        log::info!(
            "device {device_id} ({}) started as {}",
            config.name,
            status.get().role.map_or("client", Role::as_str)
        );
        let handles = Handles {
            db,
            driver,
            status,
            stopping,
            trust,
            clock: config.clock,
            device_id,
        };
        let (changes, uplink) = start_tasks(
            &handles,
            &config,
            &identity,
            &log_watch,
            &notifications,
            boot_ms,
        )
        .await;
        let inner = Inner {
            config,
            handles,
            links,
            notifications,
            identity,
            pairing: Pairing::default(),
            dialer,
            connector,
            thread: Mutex::new(Some(thread)),
            uplink,
            changes,
            log_watch,
        };
        Ok(Node {
            inner: Arc::new(inner),
        })
    }

    /// The change feed (issue #16): the events after `since` (none: from now on), then the live
    /// ones — what `GET /api/v1/changes` serves, as typed events.
    pub fn changes(&self, since: Option<ChangeId>) -> Result<ChangeStream, FutureChangeId> {
        self.inner.changes.subscribe(since)
    }

    /// Change-feed streams open now.
    pub fn feed_subscribers(&self) -> usize {
        self.inner.changes.subscribers()
    }

    /// The head-office uplink's status, when head office is configured.
    pub fn uplink(&self) -> Option<UplinkStatus> {
        self.inner.uplink.as_ref().map(UplinkState::get)
    }

    /// The node is stopping: background tasks end.
    pub fn is_stopping(&self) -> bool {
        self.inner.handles.stopping.is_set()
    }

    /// The head of this device's log chain, signed on the master (issue #17; `/health`).
    pub fn log_head(&self) -> LogHead {
        self.inner.log_watch.head()
    }

    /// Audits an alarm raised outside the sync core (through the driver, like every write).
    pub fn alarm(&self, why: &'static str, details: serde_json::Value) {
        self.inner.handles.driver.alarm(why, details);
    }

    /// The store's trust list as the links check it.
    pub fn trust(&self) -> &TrustBook {
        &self.inner.handles.trust
    }

    /// This device's pairing window (it sponsors new devices).
    pub fn pairing(&self) -> &Pairing {
        &self.inner.pairing
    }

    /// Joins the store of the sponsor at `peer` with the code it showed, then links to it.
    pub async fn join(&self, code: &str, peer: &str) -> Result<Joined, JoinError> {
        let alone = self.inner.config.peers.is_empty() && self.status().roster.is_empty();
        let (dialer, driver) = (&self.inner.dialer, &self.inner.handles.driver);
        let joined = join::join(dialer, driver, alone, code, peer).await?;
        self.inner.connector.ensure(peer);
        Ok(joined)
    }

    /// Reads of this device's database, on the blocking pool.
    pub fn db(&self) -> &Db {
        &self.inner.handles.db
    }

    /// This device's identity: its certificate and fingerprint.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub(crate) fn links(&self) -> &Links {
        &self.inner.links
    }

    pub(crate) fn driver(&self) -> &Driver {
        &self.inner.handles.driver
    }

    /// The sync core's notifications from now on: role changes, verdicts on this device's own
    /// events, log growth. A subscriber more than 1024 notifications behind (the driver's
    /// `NOTIFICATIONS_MAX`) is told how many it missed (`RecvError::Lagged`) and goes on from
    /// the oldest kept.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.notifications.subscribe()
    }

    /// The sync state as of the driver's last input.
    pub fn status(&self) -> Status {
        self.inner.handles.status.get()
    }

    /// This device's role as of the driver's last input; [`Role::Client`] while it has none
    /// yet.
    pub fn role(&self) -> Role {
        self.status().role.unwrap_or(Role::Client)
    }

    /// The node's wall clock now, in ms since the Unix epoch ([`NodeConfig::clock`]).
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

    /// A local write, through the driver (one transaction; on a client, pushed at once if
    /// critical).
    pub async fn local_write(&self, command: Command) -> Result<LocalDone, NodeError> {
        self.inner.handles.driver.local_write(command).await
    }

    /// Whether this device holds its own revocation: from the log, or from a trusted device
    /// that refused it as revoked (issue #27). A device that never hears of it (stolen and kept
    /// offline) cannot know: that is the documented limit.
    pub fn is_revoked(&self) -> bool {
        self.inner.handles.is_revoked()
    }

    /// A till's write (a sale, a product): refused while the device is joining its store
    /// ([`NodeError::Joining`]), since what it recorded then would belong to no store.
    pub async fn till_write(&self, command: Command) -> Result<LocalDone, NodeError> {
        if self.is_revoked() {
            return Err(NodeError::Revoked);
        }
        if self.status().joining {
            return Err(NodeError::Joining);
        }
        self.local_write(command).await
    }

    /// Hands the master role to `target` (this node must be master).
    pub async fn handover(
        &self,
        target: DeviceId,
    ) -> Result<Result<(), HandoverError<StorageError>>, NodeError> {
        let (reply, answer) = oneshot::channel();
        if !self
            .inner
            .handles
            .driver
            .send(Input::Handover { target, reply })
        {
            return Err(NodeError::Busy);
        }
        answer.await.map_err(|_| NodeError::Busy)
    }

    /// A sync message over REST; returns what the core answers to `from`.
    pub async fn exchange(
        &self,
        from: DeviceId,
        message: Message,
    ) -> Result<Vec<Message>, NodeError> {
        let (reply, answer) = oneshot::channel();
        if !self.inner.handles.driver.send(Input::Rest {
            from,
            message,
            reply,
        }) {
            return Err(NodeError::Busy);
        }
        answer.await.map_err(|_| NodeError::Busy)
    }

    /// Stops the links and the driver; the driver records the clean stop in the audit log as
    /// its last write.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.inner.handles.stopping.raise();
        let thread = crate::locks::lock(&self.inner.thread).take();
        // The driver signs what was journaled since the last signing before it stops.
        let driver = self.inner.handles.driver.clone();
        let stopping = tokio::task::spawn_blocking(move || {
            driver.stop();
            match thread.map(std::thread::JoinHandle::join) {
                Some(Ok(recorded)) => recorded.map_err(NodeError::Storage),
                Some(Err(_)) => Err(NodeError::Panicked),
                None => Ok(()),
            }
        });
        match tokio::time::timeout(DRIVER_STOP_WAIT, stopping).await {
            Ok(Ok(stopped)) => stopped,
            Ok(Err(_)) => Err(NodeError::Panicked),
            Err(_) => Err(NodeError::StopTimedOut(DRIVER_STOP_WAIT)),
        }
    }
}

/// The dialer this device reaches its peers with, and the connector that keeps a link to each.
fn dial_peers(
    config: &NodeConfig,
    identity: &Arc<Identity>,
    trust: &TrustBook,
    links: &Links,
    driver: &Driver,
    stopping: &Stopping,
) -> (Dialer, Connector) {
    let dialer = Dialer::new(
        Arc::clone(identity),
        trust.clone(),
        config.device_id,
        config.name.clone(),
        config.clock,
    );
    let connector = Connector::new(
        links.clone(),
        driver.clone(),
        dialer.clone(),
        stopping.receiver(),
    );
    let connector = if config.sync_over_rest {
        connector.over_rest()
    } else {
        connector
    };
    (dialer, connector)
}

/// Starts what runs beside the driver, each with the handles it needs: the change feed's
/// producer, the journal's signing once it verified, this device's own trust entry, and head
/// office's uplink when one is configured.
async fn start_tasks(
    handles: &Handles,
    config: &NodeConfig,
    identity: &Arc<Identity>,
    log_watch: &Arc<LogWatch>,
    notifications: &broadcast::Sender<Notification>,
    boot_ms: u64,
) -> (ChangeFeed, Option<UplinkState>) {
    let changes = ChangeFeed::new(boot_ms);
    tokio::spawn(crate::tasks::changes::produce(
        handles.clone(),
        notifications.subscribe(),
        changes.clone(),
    ));
    let recheck_every = Duration::from_millis(config.log_recheck_interval_ms);
    tokio::spawn(sign_once_verified(
        handles.clone(),
        Arc::clone(identity),
        Arc::clone(log_watch),
        recheck_every,
    ));
    trust_itself(handles, identity, config).await;
    let uplink = config
        .head_office
        .clone()
        .map(|office| hq::spawn(handles, office, config.uplink_limits.clone()));
    (changes, uplink)
}

/// What runs beside the driver once the journal verified: its signing and the log watch. Never
/// sign a chain that does not verify: that would vouch for a change made while the node was
/// down. A database that cannot be read now (busy, pool timeout) is checked again; only a
/// verified break stops the signing.
async fn sign_once_verified(
    handles: Handles,
    identity: Arc<Identity>,
    watch: Arc<LogWatch>,
    recheck_every: Duration,
) {
    loop {
        match check_journal(&handles).await {
            Some(true) => break journal::run(handles, &identity, watch, recheck_every).await,
            Some(false) => {
                log::error!("the journal's heads and pushes are not signed: it is broken");
                handles.driver.send_or_log(Input::JournalBroken);
                break crate::tasks::log_watch::run(handles, watch, recheck_every, None).await;
            }
            None if handles.stopping.is_set() => break,
            None => tokio::time::sleep(SIGN_INTERVAL).await,
        }
    }
}

/// Puts this device's own certificate in the store's trust list, bound to its id, if the list
/// does not have it: so that the devices it links to know it after the upgrade window. A refusal
/// (another certificate holds this device id) is logged: the store will refuse this device's
/// links too, and the owner must revoke the other certificate or renumber.
async fn trust_itself(handles: &Handles, identity: &Identity, config: &NodeConfig) {
    let me = identity.fingerprint();
    if handles.trust.is_trusted(&me) || handles.trust.is_revoked(&me) {
        return;
    }
    let command = Command::Trust {
        fingerprint: me,
        device_id: config.device_id,
        name: config.name.clone(),
        state: rms_domain::TrustState::Trusted,
        how: "self".into(),
    };
    if let Err(err) = handles.driver.local_write(command).await {
        log::error!("cannot put this device's certificate in the trust list: {err}");
    }
}

/// The journal (issue #17) is checked at every start, in the background (it reads every entry
/// and row: seconds for a million): a break is audited as an alarm naming the entry. Whether it
/// verifies; `None` when it could not be read.
async fn check_journal(handles: &Handles) -> Option<bool> {
    match handles.db.read(rms_storage::journal::verify).await {
        Ok(verified) => match verified.broken {
            None => {
                log::info!("the journal verifies");
                Some(true)
            }
            Some(broken) => {
                log::error!("the journal does not verify: {broken}");
                let details = serde_json::json!({
                    "chain": broken.chain.as_str(),
                    "seq": broken.seq,
                    "ref": broken.reference,
                    "problem": broken.why,
                });
                handles.driver.alarm("journal_broken", details);
                Some(false)
            }
        },
        Err(err) => {
            log::error!("cannot check the journal (checked again shortly): {err}");
            None
        }
    }
}

/// The sync core's configuration for this node. A device that knew other devices before it
/// stopped (`knew_peers`) is not alone, even without `--peer`: it must not form a store of its
/// own and depose the real master.
fn sync_config(config: &NodeConfig, knew_peers: bool, now_ms: u64) -> SyncConfig {
    let device_id = config.device_id;
    SyncConfig {
        me: PeerInfo {
            device_id,
            name: config.name.clone(),
            advertise: config.advertise.clone(),
            priority: config.priority,
        },
        has_peers: !config.peers.is_empty() || knew_peers,
        sync_interval_ms: config.sync_interval_ms,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        master_timeout_ms: config.master_timeout_ms,
        reclaim: config.reclaim,
        rng_seed: now_ms ^ u64::from(device_id.get()).rotate_left(32),
        clock_drift_max_ms: 60_000,
        eager_sync: config.eager_sync,
    }
}

/// What [`open`] found.
struct Opened {
    identity: Identity,
    store: Store,
    trust: rms_domain::TrustList,
    window_closes_at_ms: u64,
}

impl Opened {
    /// The identity and the store, shared, and the trust list as the links will check it.
    fn parts(self, config: &NodeConfig) -> (Arc<Identity>, Arc<Store>, TrustBook) {
        let trust = TrustBook::new(
            self.trust,
            self.identity.fingerprint(),
            config.device_id,
            config.store_key.clone(),
            self.window_closes_at_ms,
        );
        (Arc::new(self.identity), Arc::new(self.store), trust)
    }
}

/// Loads (or makes) the device's identity and opens its database, recording the start. The
/// identity first: a key others may read stops the start before anything is opened. The start is
/// recorded before the driver exists: the one write not made by it.
async fn open(config: &NodeConfig) -> Result<Opened, StartError> {
    let device_id = config.device_id;
    let data_dir = config.data_dir.clone();
    let joining = !config.peers.is_empty();
    let me = Device {
        device_id,
        name: config.name.clone(),
        role: Role::Client,
        advertise: config.advertise.clone(),
        priority: config.priority,
        online: true,
        last_seen: Some(rfc3339_from_ms(config.clock.now_ms())),
    };
    let now_ms = config.clock.now_ms();
    let asked = match config.store_key_window_ms {
        None => rms_storage::trust::WindowAsked::Default {
            upgrade_ms: STORE_KEY_WINDOW_MS,
        },
        Some(ms) => rms_storage::trust::WindowAsked::OpenFor(ms),
    };
    tokio::task::spawn_blocking(move || {
        let identity = match &data_dir {
            Some(dir) => Identity::load_or_create(dir),
            None => Identity::ephemeral(),
        }?;
        let store = match &data_dir {
            Some(dir) => Store::open(dir, device_id),
            None => Store::open_in_memory(device_id),
        }?;
        // Before any event: a restored copy, or a fresh database joining a store, numbers its
        // events where no earlier incarnation of this id can have reached.
        if let Some(began) = rms_storage::incarnation::start(&store, now_ms, joining)? {
            log::warn!(
                "device {device_id}: a new incarnation ({}): its events are numbered from \
                 {device_id}-{}",
                began.why.as_str(),
                began.first_seq
            );
        }
        let window_closes_at_ms = store.write(|tx| {
            local::record_startup(tx, &me, now_ms)?;
            rms_storage::trust::window_at_start(tx, now_ms, asked)
        })?;
        let trust = store.read(rms_storage::trust::load)?;
        Ok::<Opened, StartError>(Opened {
            identity,
            store,
            trust,
            window_closes_at_ms,
        })
    })
    .await
    .map_err(|e| StartError::Db(DbError::Panicked(e)))?
}
