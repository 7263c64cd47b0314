//! The simulator's state and its loop: the devices (a real `SyncNode` over a real in-memory
//! database each), construction, stepping, the handling of each node's output, and the trace a
//! failure prints.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rms_domain::{DeviceId, Epoch, Fingerprint, Role};
use rms_storage::{StorageError, Store};
use rms_sync::{Notification, Now, PeerInfo, Rng, SyncConfig, SyncNode, Timer, To};
use rms_transport::StoreAdapter;

use super::invariants::Accepted;
use super::lifecycle::Lifecycle;
use super::network::Packet;
use super::{
    ACTION_TICK_MS, HEARTBEAT_MS, MASTER_TIMEOUT_MS, STEPS_AT_ONE_TIME_MAX, SYNC_MS, TRACE_LINES,
    WALL_BASE_MS,
};

pub(super) type Node = SyncNode<StoreAdapter>;

pub(super) struct Device {
    pub(super) id: DeviceId,
    pub(super) priority: i32,
    pub(super) store: Arc<Store>,
    pub(super) node: Option<Node>,
    /// Wall clock offset of this device.
    pub(super) skew_ms: i64,
    pub(super) paused_until: Option<u64>,
    /// When it last resumed from a pause.
    pub(super) resumed_at: Option<u64>,
    /// Highest epoch this device ever had: it must never go back.
    pub(super) max_epoch: Option<Epoch>,
    pub(super) role_changes: u64,
    /// The certificate this device's links present (made up: the simulator has no TLS), which
    /// a revocation names.
    pub(super) fingerprint: Fingerprint,
    /// The latest copy `rms-node backup` took of its database, which a restore starts from.
    pub(super) backup: Option<(u64, Store)>,
}

pub(super) struct Sim {
    pub(super) seed: u64,
    pub(super) rng: Rng,
    pub(super) now: u64,
    pub(super) devices: Vec<Device>,
    /// Delivery time and a tie-breaker → packet.
    pub(super) queue: BTreeMap<(u64, u64), Packet>,
    pub(super) packets_sent: u64,
    /// Directed links that are cut: (from, to).
    pub(super) cut: BTreeSet<(DeviceId, DeviceId)>,
    pub(super) drop_percent: u64,
    pub(super) dup_percent: u64,
    pub(super) delay_max_ms: u64,
    /// Every sale a till was answered for (accepted or pending), and the device that answered:
    /// it must never be lost, unless its device's disk was lost with it or its device was
    /// revoked and told its till (`Lifecycle`).
    pub(super) answered: Vec<(String, DeviceId)>,
    pub(super) trace: VecDeque<String>,
    pub(super) steps_at_this_time: u64,
    /// Every device runs with `--reclaim` in this run.
    pub(super) reclaim: bool,
    /// Every device syncs eagerly in this run (`SyncConfig::eager_sync`).
    pub(super) eager_sync: bool,
    /// This run may cut links (partitions); the others only crash, pause, skew clocks, hand
    /// over and lose messages, and must then keep the stricter invariants (issue #12).
    pub(super) partitions: bool,
    /// A partition happened in this run: split-brain allowances apply.
    pub(super) partitioned: bool,
    /// When a message on a directed link was last lost (dropped, not cut).
    pub(super) last_drop: BTreeMap<(DeviceId, DeviceId), u64>,
    /// Forced entries already checked, and the rule that excused each.
    pub(super) excused: BTreeMap<String, &'static str>,
    /// The epoch whose master first accepted each event and the position it gave it, and how
    /// far each master's log was read.
    pub(super) first_accepted: BTreeMap<String, (Epoch, u64)>,
    /// What each epoch's master logged as accepted: position → the entry (what `excuse` needs to
    /// tell which accepted entries a forced one came after).
    pub(super) accepted_logs: BTreeMap<Epoch, BTreeMap<u64, Accepted>>,
    pub(super) read_heads: BTreeMap<DeviceId, u64>,
    pub(super) pauses: u64,
    /// Devices replaced, restored and revoked, and what that excuses (issue #27).
    pub(super) lifecycle: Lifecycle,
}

pub(super) fn device_id(index: usize) -> DeviceId {
    DeviceId::new(u16::try_from(index + 1).expect("at most 7 devices")).expect("not zero")
}

impl Sim {
    pub(super) fn new(seed: u64) -> Result<Sim, String> {
        let mut rng = Rng::new(seed);
        let count = 2 + rng.below(6) as usize;
        let varied_priorities = rng.below(10) < 3;
        let mut devices = Vec::with_capacity(count);
        for index in 0..count {
            let id = device_id(index);
            let store = Arc::new(Store::open_in_memory(id).map_err(|e| e.to_string())?);
            let priority = if varied_priorities {
                rng.below(3) as i32
            } else {
                0
            };
            devices.push(Device {
                id,
                priority,
                store,
                node: None,
                skew_ms: 0,
                paused_until: None,
                resumed_at: None,
                max_epoch: None,
                role_changes: 0,
                fingerprint: Fingerprint::from_sha256([200 + index as u8; 32]),
                backup: None,
            });
        }
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            devices,
            queue: BTreeMap::new(),
            packets_sent: 0,
            cut: BTreeSet::new(),
            drop_percent: 0,
            dup_percent: 0,
            delay_max_ms: 5,
            answered: Vec::new(),
            trace: VecDeque::new(),
            steps_at_this_time: 0,
            reclaim: false,
            eager_sync: false,
            partitions: false,
            partitioned: false,
            last_drop: BTreeMap::new(),
            excused: BTreeMap::new(),
            first_accepted: BTreeMap::new(),
            accepted_logs: BTreeMap::new(),
            read_heads: BTreeMap::new(),
            pauses: 0,
            lifecycle: Lifecycle::default(),
        };
        sim.reclaim = sim.rng.below(5) == 0;
        sim.eager_sync = sim.rng.below(2) == 0;
        sim.partitions = sim.rng.below(2) == 0;
        sim.lifecycle.enabled = sim.rng.below(3) == 0;
        for index in 0..count {
            sim.start(index)?;
        }
        Ok(sim)
    }

    pub(super) fn log(&mut self, line: String) {
        if self.trace.len() >= trace_lines() {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} {line}", self.now));
    }

    pub(super) fn now_of(&self, index: usize) -> Now {
        let wall = (WALL_BASE_MS + self.now).saturating_add_signed(self.devices[index].skew_ms);
        Now {
            mono_ms: self.now,
            wall_ms: wall,
        }
    }

    fn config(&self, index: usize) -> SyncConfig {
        let device = &self.devices[index];
        SyncConfig {
            me: PeerInfo {
                device_id: device.id,
                name: format!("till-{}", device.id),
                advertise: format!("sim://{}", device.id),
                priority: device.priority,
            },
            has_peers: true,
            sync_interval_ms: SYNC_MS,
            heartbeat_interval_ms: HEARTBEAT_MS,
            master_timeout_ms: MASTER_TIMEOUT_MS,
            reclaim: self.reclaim,
            rng_seed: self.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9),
            clock_drift_max_ms: 60_000,
            eager_sync: self.eager_sync,
        }
    }

    /// Starts device `index` on its store as `rms-node` does: a fresh database (every device
    /// is given peers) or a restored copy begins an incarnation before the node makes any event.
    pub(super) fn start(&mut self, index: usize) -> Result<(), String> {
        let now = self.now_of(index);
        rms_storage::incarnation::start(&self.devices[index].store, now.wall_ms, true)
            .map_err(|e| format!("d{} cannot begin its incarnation: {e}", index + 1))?;
        let adapter = StoreAdapter::without_keys(Arc::clone(&self.devices[index].store));
        let node = SyncNode::new(self.config(index), adapter, now).map_err(|e| e.to_string())?;
        self.devices[index].node = Some(node);
        self.log(format!("start d{}", self.devices[index].id));
        self.after_input(index)
    }

    /// Moves virtual time to the next thing due and runs it: deliveries, then timeouts. Fails
    /// on invariant 15 (time stopped) and, through `check_step`, on invariants 8 to 10.
    pub(super) fn step(&mut self) -> Result<(), String> {
        self.steps_at_this_time += 1;
        if self.steps_at_this_time > STEPS_AT_ONE_TIME_MAX {
            return Err(format!(
                "time stopped at {} ms: a node keeps asking for a timeout in the past",
                self.now
            ));
        }
        let mut next = self.now + ACTION_TICK_MS;
        if let Some((&(at, _), _)) = self.queue.first_key_value() {
            next = next.min(at);
        }
        for device in &self.devices {
            if let (Some(node), None) = (&device.node, device.paused_until) {
                next = next.min(node.poll_timeout());
            }
        }
        if next > self.now {
            self.now = next;
            self.steps_at_this_time = 0;
        }
        self.wake_paused()?;
        // Packets due together for one device reach it together, as a driver finds them
        // waiting in its queue (the master decides waiting pushes in one group commit).
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let mut packets = vec![entry.remove()];
            while let Some(next) = self.queue.first_entry() {
                if next.key().0 > self.now || next.get().to != packets[0].to {
                    break;
                }
                packets.push(next.remove());
            }
            self.deliver(packets)?;
        }
        for index in 0..self.devices.len() {
            let due = match (&self.devices[index].node, self.devices[index].paused_until) {
                (Some(node), None) => node.poll_timeout() <= self.now,
                _ => false,
            };
            if due {
                let now = self.now_of(index);
                // The trace names the timers that decide something (not the periodic ones).
                let fired = self.devices[index].node.as_ref().map(|n| n.poll_timer().0);
                if let Some(timer) = fired.filter(|t| !matches!(t, Timer::Heartbeat | Timer::Sync))
                {
                    self.log(format!("d{} timer {timer:?}", index + 1));
                }
                if let Some(node) = self.devices[index].node.as_mut() {
                    node.handle_timeout(now)
                        .map_err(|e| format!("d{} timeout: {e}", index + 1))?;
                }
                self.after_input(index)?;
            }
        }
        self.learn_refusals()?;
        self.check_step()
    }

    /// Drains a node's transmits into the network and its notifications into the checks.
    pub(super) fn after_input(&mut self, index: usize) -> Result<(), String> {
        self.note_accepted(index)?;
        // As the driver does once the trust list moved: a device that holds its own
        // revocation steps out of its store.
        if self.devices[index]
            .node
            .as_ref()
            .is_some_and(|n| !n.is_revoked())
            && self.knows_revoked(index)?
        {
            let now = self.now_of(index);
            if let Some(node) = self.devices[index].node.as_mut() {
                node.revoked(now)
                    .map_err(|e| format!("d{} revoked: {e}", index + 1))?;
            }
            self.log(format!("d{} steps out of its store", index + 1));
        }
        let from = self.devices[index].id;
        let endless = |what: &str| format!("d{from} has {what} without end");
        let (transmits, notes) = match self.devices[index].node.as_mut() {
            Some(node) => (
                rms_tests::drain_bounded(|| node.poll_transmit())
                    .ok_or_else(|| endless("transmits"))?,
                rms_tests::drain_bounded(|| node.poll_notification())
                    .ok_or_else(|| endless("notifications"))?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        for note in notes {
            if let Notification::RoleChanged { role, epoch } = note {
                self.devices[index].role_changes += 1;
                let query = rms_storage::audit::AuditQuery {
                    operation: Some(rms_domain::Operation::RoleChange),
                    limit: 1,
                    ..Default::default()
                };
                let last = read(&self.devices[index].store, |c| {
                    rms_storage::audit::query(c, &query)
                })?;
                let reason = last
                    .first()
                    .and_then(|a| a.details["reason"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.log(format!(
                    "d{from} is now {} in {:?} ({reason})",
                    role.as_str(),
                    epoch.map(|e| e.to_string())
                ));
                if role == Role::Master {
                    self.note_led(index, epoch);
                    self.check_deposition(index)?;
                    self.check_election_log(index)?;
                }
            }
        }
        for transmit in transmits {
            let targets: Vec<DeviceId> = match transmit.to {
                To::Device(to) => vec![to],
                To::AllPeers => self
                    .devices
                    .iter()
                    .map(|d| d.id)
                    .filter(|id| *id != from)
                    .collect(),
            };
            let json = serde_json::to_string(&transmit.message).map_err(|e| e.to_string())?;
            for to in targets {
                self.send(from, to, json.clone());
            }
        }
        Ok(())
    }

    pub(super) fn failure(&self, error: &str) -> String {
        let mut text = format!(
            "simulation seed {} failed: {error}\nlast steps:\n",
            self.seed
        );
        for line in &self.trace {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!(
            "replay with: RMS_SIM_SEED={} make sim\n",
            self.seed
        ));
        text
    }
}

/// How many trace lines a failure prints: [`TRACE_LINES`], or `RMS_SIM_TRACE_LINES`.
fn trace_lines() -> usize {
    std::env::var("RMS_SIM_TRACE_LINES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(TRACE_LINES)
}

pub(super) fn read<T>(
    store: &Store,
    f: impl FnOnce(&rms_storage::Connection) -> Result<T, StorageError>,
) -> Result<T, String> {
    store.read(f).map_err(|e| e.to_string())
}
