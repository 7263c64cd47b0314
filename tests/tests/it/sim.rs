//! The deterministic simulator (TigerBeetle's VOPR, quinn-proto's `Pair`, canonical/raft's
//! fixture): 2 to 7 devices, each a real `SyncNode` over a real rms-storage database (in memory),
//! a seeded network that drops, duplicates, delays and reorders messages, full and one-way
//! partitions, crashes with restart from the persisted state, pauses (SIGSTOP), clock skew and
//! jumps, and a workload of catalogue edits, scarce-stock sales from several devices, stock
//! adjustments and handovers. Invariants are checked after every step and at quiescence; a failure
//! prints the seed and the last steps.
//!
//! `RMS_SIM_SEEDS=N` runs N seeds (default [`DEFAULT_SEEDS`]); `RMS_SIM_SEED=S` replays one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rms_domain::rules::{self, Products};
use rms_domain::{
    DeviceId, Epoch, EventStatus, LogEntry, NewProduct, NewSale, NewSaleLine, Operation,
    ProductPatch, Role, StockAdjustment, rfc3339_from_ms,
};
use rms_storage::audit::AuditQuery;
use rms_storage::local::{self, Command};
use rms_storage::products::Table;
use rms_storage::{StorageError, Store, audit, events, products, sales};
use rms_sync::{Message, Notification, Now, PeerInfo, Rng, SyncConfig, SyncNode, To};
use rms_transport::StoreAdapter;

/// Seeds per run when `RMS_SIM_SEEDS` is not set: about half a minute on two cores (debug build).
const DEFAULT_SEEDS: u64 = 150;

const HEARTBEAT_MS: u64 = 100;
const MASTER_TIMEOUT_MS: u64 = 400;
const SYNC_MS: u64 = 1_000;
/// Random actions are considered this often.
const ACTION_TICK_MS: u64 = 10;
/// Wall time at the start of every run (2025-11-25).
const WALL_BASE_MS: u64 = 1_764_000_000_000;
/// After the network heals, one master and a converged store within this long.
const CONVERGE_MS: u64 = 60_000;
const TRACE_LINES: usize = 400;
/// Steps without virtual time moving before the simulator calls it a livelock.
const STEPS_AT_ONE_TIME_MAX: u64 = 10_000;
const SKUS: [&str; 5] = ["apple", "bread", "cheese", "dates", "eggs"];

type Node = SyncNode<StoreAdapter>;

struct Device {
    id: DeviceId,
    priority: i32,
    store: Arc<Store>,
    node: Option<Node>,
    /// Wall clock offset of this device.
    skew_ms: i64,
    paused_until: Option<u64>,
    /// When it last resumed from a pause.
    resumed_at: Option<u64>,
    /// Highest epoch this device ever had: it must never go back.
    max_epoch: Option<Epoch>,
    role_changes: u64,
}

struct Packet {
    from: DeviceId,
    to: DeviceId,
    json: String,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    devices: Vec<Device>,
    /// Delivery time and a tie-breaker → packet.
    queue: BTreeMap<(u64, u64), Packet>,
    packets_sent: u64,
    /// Directed links that are cut: (from, to).
    cut: BTreeSet<(DeviceId, DeviceId)>,
    drop_percent: u64,
    dup_percent: u64,
    delay_max_ms: u64,
    /// Every sale a till was answered for (accepted or pending): it must never be lost.
    answered: Vec<String>,
    trace: VecDeque<String>,
    steps_at_this_time: u64,
    /// Every device runs with `--reclaim` in this run.
    reclaim: bool,
    /// This run may cut links (partitions); the others only crash, pause, skew clocks, hand
    /// over and lose messages, and must then keep the stricter invariants (issue #12).
    partitions: bool,
    /// A partition happened in this run: split-brain allowances apply.
    partitioned: bool,
    /// When a message on a directed link was last lost (dropped, not cut).
    last_drop: BTreeMap<(DeviceId, DeviceId), u64>,
    /// Forced entries already checked, and the rule that excused each.
    excused: BTreeMap<String, &'static str>,
    /// The epoch whose master first accepted each event, and how far each master's log was read.
    first_accepted: BTreeMap<String, Epoch>,
    read_heads: BTreeMap<DeviceId, u64>,
    pauses: u64,
}

fn device_id(index: usize) -> DeviceId {
    DeviceId::new(u16::try_from(index + 1).expect("at most 7 devices")).expect("not zero")
}

impl Sim {
    fn new(seed: u64) -> Result<Sim, String> {
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
            partitions: false,
            partitioned: false,
            last_drop: BTreeMap::new(),
            excused: BTreeMap::new(),
            first_accepted: BTreeMap::new(),
            read_heads: BTreeMap::new(),
            pauses: 0,
        };
        sim.reclaim = sim.rng.below(5) == 0;
        sim.partitions = sim.rng.below(2) == 0;
        for index in 0..count {
            sim.start(index)?;
        }
        Ok(sim)
    }

    fn log(&mut self, line: String) {
        if self.trace.len() >= trace_lines() {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} {line}", self.now));
    }

    fn now_of(&self, index: usize) -> Now {
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
        }
    }

    fn start(&mut self, index: usize) -> Result<(), String> {
        let now = self.now_of(index);
        let adapter = StoreAdapter::new(Arc::clone(&self.devices[index].store));
        let node = SyncNode::new(self.config(index), adapter, now).map_err(|e| e.to_string())?;
        self.devices[index].node = Some(node);
        self.log(format!("start d{}", self.devices[index].id));
        self.after_input(index)
    }

    // ----- the loop -----

    fn step(&mut self) -> Result<(), String> {
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
                if let Some(node) = self.devices[index].node.as_mut() {
                    node.handle_timeout(now)
                        .map_err(|e| format!("d{} timeout: {e}", index + 1))?;
                }
                self.after_input(index)?;
            }
        }
        self.check_step()
    }

    /// Delivers packets to one device, as one input.
    fn deliver(&mut self, packets: Vec<Packet>) -> Result<(), String> {
        let to = packets[0].to;
        let index = usize::from(to.get()) - 1;
        if self.devices[index].node.is_none() {
            return Ok(());
        }
        if let Some(until) = self.devices[index].paused_until {
            // A stopped process does not read its socket: the messages wait in the buffer, and
            // are read when it resumes, before its overdue timers run (inputs before timeouts).
            for packet in packets {
                let key = (until, self.packets_sent);
                self.packets_sent += 1;
                self.queue.insert(key, packet);
            }
            return Ok(());
        }
        let mut messages = Vec::with_capacity(packets.len());
        for packet in packets {
            let message: Message = serde_json::from_str(&packet.json)
                .map_err(|e| format!("undecodable message: {e}"))?;
            self.log(format!(
                "d{} -> d{} {}",
                packet.from,
                packet.to,
                describe(&message)
            ));
            messages.push((packet.from, message));
        }
        let now = self.now_of(index);
        if let Some(node) = self.devices[index].node.as_mut() {
            node.handle_messages(messages, now)
                .map_err(|e| format!("d{to} handling messages: {e}"))?;
        }
        self.after_input(index)
    }

    /// Drains a node's transmits into the network and its notifications into the checks.
    fn after_input(&mut self, index: usize) -> Result<(), String> {
        self.note_accepted(index)?;
        let from = self.devices[index].id;
        let mut transmits = Vec::new();
        let mut notes = Vec::new();
        if let Some(node) = self.devices[index].node.as_mut() {
            while let Some(t) = node.poll_transmit() {
                transmits.push(t);
            }
            while let Some(n) = node.poll_notification() {
                notes.push(n);
            }
        }
        for note in notes {
            if let Notification::RoleChanged { role, epoch } = note {
                self.devices[index].role_changes += 1;
                self.log(format!(
                    "d{from} is now {} in {:?}",
                    role.as_str(),
                    epoch.map(|e| e.to_string())
                ));
                if role == Role::Master {
                    self.check_deposition(index)?;
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

    /// Records which epoch first accepted each entry a master logged since it was last read.
    fn note_accepted(&mut self, index: usize) -> Result<(), String> {
        let device = &self.devices[index];
        let Some(node) = device.node.as_ref() else {
            return Ok(());
        };
        let head = node.log_head();
        let read_head = self
            .read_heads
            .get(&device.id)
            .copied()
            .unwrap_or(0)
            .min(head);
        if node.role() != Role::Master || head == read_head {
            self.read_heads.insert(device.id, read_head);
            return Ok(());
        }
        let store = Arc::clone(&device.store);
        let id = device.id;
        let new = read(&store, |c| events::log_after(c, read_head, usize::MAX))?;
        for entry in new.iter().filter(|e| e.event.status == EventStatus::Synced) {
            self.first_accepted
                .entry(entry.event.event_id.to_string())
                .or_insert(entry.epoch);
        }
        self.read_heads.insert(id, head);
        Ok(())
    }

    fn send(&mut self, from: DeviceId, to: DeviceId, json: String) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        if self.rng.below(100) < self.drop_percent {
            self.last_drop.insert((from, to), self.now);
            return;
        }
        let copies = if self.rng.below(100) < self.dup_percent {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(self.delay_max_ms);
            self.packets_sent += 1;
            self.queue.insert(
                (at, self.packets_sent),
                Packet {
                    from,
                    to,
                    json: json.clone(),
                },
            );
        }
    }

    fn wake_paused(&mut self) -> Result<(), String> {
        for index in 0..self.devices.len() {
            if self.devices[index]
                .paused_until
                .is_some_and(|until| until <= self.now)
            {
                self.devices[index].paused_until = None;
                self.devices[index].resumed_at = Some(self.now);
                self.log(format!("resume d{}", index + 1));
            }
        }
        Ok(())
    }

    // ----- the workload and the faults -----

    fn act(&mut self) -> Result<(), String> {
        let roll = self.rng.below(10_000);
        let index = self.rng.below(self.devices.len() as u64) as usize;
        match roll {
            0..=2_499 => self.local_write(index),
            2_500..=2_519 if self.partitions => {
                self.partition();
                Ok(())
            }
            2_520..=2_549 => {
                self.heal_links();
                Ok(())
            }
            2_550..=2_559 => self.crash(index),
            2_560..=2_599 => self.restart_crashed(),
            2_600..=2_609 => {
                self.pause(index);
                Ok(())
            }
            2_610..=2_614 => {
                self.jump_clock(index);
                Ok(())
            }
            2_615..=2_619 => {
                self.handover();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn local_write(&mut self, index: usize) -> Result<(), String> {
        if self.devices[index].paused_until.is_some() {
            return Ok(());
        }
        let Some(role) = self.devices[index]
            .node
            .as_ref()
            .map(Node::local_write_role)
        else {
            return Ok(());
        };
        let command = self.command(index);
        let now = self.now_of(index);
        let result = self.devices[index]
            .store
            .write(|tx| local::record(tx, role, now.wall_ms, command));
        match result {
            Ok(recorded) => {
                let what = recorded.event.payload.kind();
                self.log(format!(
                    "d{} wrote {} {} ({})",
                    index + 1,
                    what,
                    recorded.event.event_id,
                    recorded.event.status.as_str()
                ));
                if let Some(sale) = &recorded.sale {
                    self.answered.push(sale.sale_id.clone());
                }
                if let Some(node) = self.devices[index].node.as_mut() {
                    node.handle_local_write(&recorded.event, recorded.entry.as_ref(), now)
                        .map_err(|e| format!("d{} local write: {e}", index + 1))?;
                }
                self.after_input(index)
            }
            Err(StorageError::Refused { .. } | StorageError::Invalid(_)) => Ok(()),
            Err(other) => Err(format!("d{} local write failed: {other}", index + 1)),
        }
    }

    fn command(&mut self, index: usize) -> Command {
        let sku = SKUS[self.rng.below(SKUS.len() as u64) as usize].to_owned();
        let user = Some(format!("u{}", index + 1));
        match self.rng.below(100) {
            0..=14 => Command::CreateProduct(NewProduct {
                sku,
                name: "Thing".into(),
                price_cents: 100 + self.rng.below(50) as i64,
                stock: self.rng.below(4) as i64,
                user_id: user,
            }),
            15..=24 => Command::AdjustStock {
                sku,
                adjustment: StockAdjustment {
                    delta: 1 + self.rng.below(3) as i64,
                    reason: "delivery".into(),
                    user_id: user,
                },
            },
            25..=32 => {
                let version = self.devices[index]
                    .store
                    .read(|c| products::get(c, &sku))
                    .ok()
                    .flatten()
                    .map(|p| p.version);
                Command::UpdateProduct {
                    sku,
                    patch: ProductPatch {
                        price_cents: Some(100 + self.rng.below(100) as i64),
                        version,
                        ..ProductPatch::default()
                    },
                }
            }
            _ => {
                let mut lines = vec![NewSaleLine {
                    sku,
                    qty: 1 + self.rng.below(2) as i64,
                }];
                if self.rng.below(4) == 0 {
                    let other = SKUS[self.rng.below(SKUS.len() as u64) as usize].to_owned();
                    lines.push(NewSaleLine { sku: other, qty: 1 });
                }
                Command::Sell(NewSale {
                    user_id: format!("u{}", index + 1),
                    lines,
                })
            }
        }
    }

    fn partition(&mut self) {
        let ids: Vec<DeviceId> = self.devices.iter().map(|d| d.id).collect();
        let one_way = self.rng.below(3) == 0;
        let side: BTreeSet<DeviceId> = ids
            .iter()
            .copied()
            .filter(|_| self.rng.below(2) == 0)
            .collect();
        for a in &ids {
            for b in &ids {
                if side.contains(a) && !side.contains(b) {
                    self.cut.insert((*a, *b));
                    if !one_way {
                        self.cut.insert((*b, *a));
                    }
                }
            }
        }
        self.partitioned = true;
        self.log(format!("partition {side:?} one_way={one_way}"));
    }

    fn heal_links(&mut self) {
        self.cut.clear();
        self.log("heal links".into());
    }

    fn crash(&mut self, index: usize) -> Result<(), String> {
        if self.devices[index].node.take().is_some() {
            self.devices[index].paused_until = None;
            self.log(format!("crash d{}", index + 1));
        }
        Ok(())
    }

    fn restart_crashed(&mut self) -> Result<(), String> {
        for index in 0..self.devices.len() {
            if self.devices[index].node.is_none() {
                return self.start(index);
            }
        }
        Ok(())
    }

    fn pause(&mut self, index: usize) {
        if self.devices[index].node.is_some() && self.devices[index].paused_until.is_none() {
            // From well under the master timeout (a hiccup) to several of them.
            let until = self.now + 100 + self.rng.below(2_900);
            self.devices[index].paused_until = Some(until);
            self.pauses += 1;
            self.log(format!("pause d{} until {until}", index + 1));
        }
    }

    fn jump_clock(&mut self, index: usize) {
        let skew = match self.rng.below(4) {
            0 => -((WALL_BASE_MS + self.now) as i64), // reset to 1970
            1 => -(self.rng.below(600_000) as i64),   // minutes back
            2 => self.rng.below(600_000) as i64,      // minutes ahead
            _ => 0,
        };
        self.devices[index].skew_ms = skew;
        self.log(format!("clock of d{} skewed by {skew} ms", index + 1));
    }

    fn handover(&mut self) {
        let Some(master) = self
            .devices
            .iter()
            .position(|d| d.node.as_ref().is_some_and(|n| n.role() == Role::Master))
        else {
            return;
        };
        let target = device_id(self.rng.below(self.devices.len() as u64) as usize);
        let now = self.now_of(master);
        if let Some(node) = self.devices[master].node.as_mut() {
            let result = node.request_handover(target, now);
            self.log(format!("handover d{} -> {target}: {result:?}", master + 1));
        }
        let _ = self.after_input(master);
    }

    // ----- invariants -----

    /// After every step: epochs never go back; a master leads its own epoch, so no two devices
    /// are master in the same epoch.
    fn check_step(&mut self) -> Result<(), String> {
        let mut masters = BTreeSet::new();
        for device in &self.devices {
            if let Some(node) = device.node.as_ref().filter(|n| n.role() == Role::Master)
                && !masters.insert(node.epoch())
            {
                return Err(format!("two masters in epoch {:?}", node.epoch()));
            }
        }
        for device in &mut self.devices {
            let Some(node) = &device.node else { continue };
            let epoch = node.epoch();
            if epoch < device.max_epoch {
                return Err(format!(
                    "d{} went back from epoch {:?} to {:?}",
                    device.id, device.max_epoch, epoch
                ));
            }
            device.max_epoch = epoch;
            if node.role() == Role::Master && epoch.is_none_or(|e| e.master_id != device.id) {
                return Err(format!(
                    "d{} is master but its epoch is {epoch:?}",
                    device.id
                ));
            }
        }
        Ok(())
    }

    /// Invariant 5: a master's stock is never below zero except where a kept sale (a forced
    /// entry) overdrew it, and every forced entry is excused by a rule (`excuse`).
    fn check_master_stock(&mut self) -> Result<(), String> {
        for index in 0..self.devices.len() {
            let device = &self.devices[index];
            if !device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master)
            {
                continue;
            }
            let store = Arc::clone(&device.store);
            let log = read(&store, |c| events::log_after(c, 0, usize::MAX))?;
            self.check_forced(&log)?;
            let base = read(&store, |c| products::list_in(c, Table::Base))?;
            for product in base.iter().filter(|p| p.stock < 0) {
                let forced = log
                    .iter()
                    .any(|e| e.forced && e.event.payload.skus().contains(&product.sku.as_str()));
                if !forced {
                    return Err(format!(
                        "master d{} has {} at stock {} with no kept sale",
                        index + 1,
                        product.sku,
                        product.stock
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every forced entry of `log` names the rule that excuses it in the trace, or fails.
    fn check_forced(&mut self, log: &[LogEntry]) -> Result<(), String> {
        for entry in log.iter().filter(|e| e.forced) {
            let id = entry.event.event_id.to_string();
            if self.excused.contains_key(&id) {
                continue;
            }
            let Some(rule) = self.excuse(entry)? else {
                return Err(format!(
                    "entry {} ({id}, from d{}) was forced by d{} in {} without a partition, \
                     although the election that made d{} master reached its origin",
                    entry.seq(),
                    entry.event.origin(),
                    entry.epoch.master_id,
                    entry.epoch,
                    entry.epoch.master_id,
                ));
            };
            self.log(format!(
                "forced {id} at seq {} excused: {rule}",
                entry.seq()
            ));
            self.excused.insert(id, rule);
        }
        Ok(())
    }

    /// Which rule allows a forced entry (a sale two masters both accepted):
    /// - "split brain": the run had a partition, and each side had a master;
    /// - "origin not reached": between its first acceptance and this entry, a master was elected
    ///   without hearing from the event's origin (crashed, paused, or its answers lost), so that
    ///   master could not decide the event before the sales that overtook it;
    /// - "island": between its first acceptance and this entry, a master was elected hearing
    ///   from no other device (the others paused, crashed or silent): it sold from its own view
    ///   while the store's log went on elsewhere (a paused master is a partition in time).
    ///
    /// Without a partition, any other forced entry is a bug: `None`.
    fn excuse(&self, entry: &LogEntry) -> Result<Option<&'static str>, String> {
        if self.partitioned {
            return Ok(Some("split brain: the run had a partition"));
        }
        let first = self
            .first_accepted
            .get(&entry.event.event_id.to_string())
            .copied()
            .unwrap_or(entry.epoch);
        let origin = u64::from(entry.event.origin().get());
        let up_to_entry: Vec<(Epoch, Vec<u64>)> = self
            .elections_won()?
            .into_iter()
            .filter(|(epoch, _)| first.term <= epoch.term && epoch.term <= entry.epoch.term)
            .collect();
        // The election that made the first acceptor came before the acceptance: whom it reached
        // says nothing about the event's origin.
        let unreached = up_to_entry.iter().any(|(epoch, answered)| {
            epoch.term > first.term
                && u64::from(epoch.master_id.get()) != origin
                && !answered.contains(&origin)
        });
        if unreached {
            return Ok(Some(
                "origin not reached: a master elected since it was accepted did not hear from its origin",
            ));
        }
        // An island master sells from its own view, the first acceptor included.
        let island = up_to_entry.iter().any(|(_, answered)| answered.is_empty());
        Ok(island.then_some(
            "island: a master elected hearing from no other device accepted it, or sold since",
        ))
    }

    /// Every epoch won by an election in this run, with the devices whose pre-vote answers the
    /// winner had (a handover or a reclaim wins no election).
    fn elections_won(&self) -> Result<Vec<(Epoch, Vec<u64>)>, String> {
        let query = AuditQuery {
            operation: Some(Operation::Election),
            limit: 1000,
            ..AuditQuery::default()
        };
        let mut won = Vec::new();
        for device in &self.devices {
            for entry in read(&device.store, |c| audit::query(c, &query))? {
                let Some(answered) = entry.details["answered"].as_array() else {
                    continue;
                };
                if let Ok(epoch) = serde_json::from_value::<Epoch>(entry.details["won"].clone()) {
                    won.push((
                        epoch,
                        answered.iter().filter_map(|id| id.as_u64()).collect(),
                    ));
                }
            }
        }
        Ok(won)
    }

    /// Issue #12: without a partition, an election never deposes a master that is running, was
    /// not paused lately, and exchanged messages with the winner without loss lately.
    fn check_deposition(&mut self, winner: usize) -> Result<(), String> {
        if self.partitioned {
            return Ok(());
        }
        let query = AuditQuery {
            operation: Some(Operation::RoleChange),
            limit: 1,
            ..AuditQuery::default()
        };
        let changes = read(&self.devices[winner].store, |c| audit::query(c, &query))?;
        let reason = changes
            .first()
            .and_then(|a| a.details["reason"].as_str())
            .unwrap_or_default()
            .to_owned();
        if !reason.starts_with("election") {
            return Ok(()); // a handover or a reclaim deposes the master on purpose
        }
        let window = 3 * MASTER_TIMEOUT_MS;
        let x = self.devices[winner].id;
        let won = self.devices[winner].node.as_ref().and_then(Node::epoch);
        let recent = |at: Option<&u64>| at.is_some_and(|t| t + window > self.now);
        for device in &self.devices {
            let running_master = device
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Master);
            // A master of a newer epoch than the winner's is not deposed by it: the winner
            // steps down as soon as it hears of that epoch.
            let newer = device.node.as_ref().and_then(Node::epoch) > won;
            if device.id == x || !running_master || device.paused_until.is_some() || newer {
                continue;
            }
            let m = device.id;
            let lossy = recent(self.last_drop.get(&(m, x))) || recent(self.last_drop.get(&(x, m)));
            if recent(device.resumed_at.as_ref()) || lossy {
                continue;
            }
            return Err(format!(
                "d{x} deposed d{m}, a running master it could reach, by {reason}"
            ));
        }
        Ok(())
    }

    fn quiet(&self) -> Result<bool, String> {
        let masters: Vec<&Device> = self
            .devices
            .iter()
            .filter(|d| d.node.as_ref().is_some_and(|n| n.role() == Role::Master))
            .collect();
        let [master] = masters.as_slice() else {
            return Ok(false);
        };
        let Some(master_node) = &master.node else {
            return Ok(false);
        };
        let head = master_node.log_head();
        for device in &self.devices {
            let Some(node) = &device.node else {
                return Ok(false);
            };
            if node.epoch() != master_node.epoch() || node.log_head() != head {
                return Ok(false);
            }
            if device.id != master.id && (node.master_id() != Some(master.id) || !node.in_sync()) {
                return Ok(false);
            }
            if read(&device.store, events::pending_summary)?.0 > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// At quiescence: invariants 1, 2, 3, 5 and 6.
    fn check_final(&self) -> Result<(), String> {
        let master = self
            .devices
            .iter()
            .find(|d| d.node.as_ref().is_some_and(|n| n.role() == Role::Master))
            .ok_or("no master at the end")?;
        let log = read(&master.store, |c| events::log_after(c, 0, usize::MAX))?;
        for (i, entry) in log.iter().enumerate() {
            if entry.seq() != i as u64 + 1 {
                return Err(format!(
                    "master log has a gap at {}: seq {}",
                    i + 1,
                    entry.seq()
                ));
            }
        }
        check_replay(&master.store, &log)?;
        let master_products = read(&master.store, products::list)?;
        for device in &self.devices {
            let theirs = read(&device.store, |c| events::log_after(c, 0, usize::MAX))?;
            let (mine, master_summary) = (summary(&theirs), summary(&log));
            if mine != master_summary {
                let at = mine
                    .iter()
                    .zip(&master_summary)
                    .position(|(a, b)| a != b)
                    .unwrap_or(mine.len().min(master_summary.len()));
                return Err(format!(
                    "d{}'s log differs from the master's (d{}) at index {at}: {:?} vs {:?} (lengths {} and {})",
                    device.id,
                    master.id,
                    mine.get(at),
                    master_summary.get(at),
                    mine.len(),
                    master_summary.len()
                ));
            }
            let visible = read(&device.store, products::list)?;
            let base = read(&device.store, |c| products::list_in(c, Table::Base))?;
            if visible != master_products || base != master_products {
                return Err(format!(
                    "d{}'s products differ from the master's:\n{visible:?}\nvs\n{master_products:?}",
                    device.id
                ));
            }
            for sale_id in &self.answered {
                let sale = read(&device.store, |c| sales::get(c, sale_id))?
                    .ok_or_else(|| format!("sale {sale_id} is missing on d{}", device.id))?;
                let decided = match sale.status {
                    rms_domain::SaleStatus::Accepted => true,
                    rms_domain::SaleStatus::Rejected => sale.reason.is_some(),
                    rms_domain::SaleStatus::Pending => false,
                };
                if !decided {
                    return Err(format!(
                        "sale {sale_id} on d{} is {:?} without a verdict",
                        device.id, sale.status
                    ));
                }
            }
        }
        self.check_audit(&log)
    }

    /// Invariant 6: every rejection and kept conflict is audited by the master that decided it,
    /// and every role change by the device that changed.
    fn check_audit(&self, log: &[LogEntry]) -> Result<(), String> {
        for entry in log
            .iter()
            .filter(|e| e.event.status == EventStatus::Rejected || e.forced)
        {
            let decider = &self.devices[usize::from(entry.epoch.master_id.get()) - 1];
            let operation = if entry.forced {
                Operation::Conflict
            } else {
                Operation::Rejection
            };
            let query = AuditQuery {
                operation: Some(operation),
                limit: 1000,
                ..AuditQuery::default()
            };
            let found = read(&decider.store, |c| audit::query(c, &query))?
                .iter()
                .any(|a| a.event_id == Some(entry.event.event_id));
            if !found {
                return Err(format!(
                    "no {} audit entry on d{} for {}",
                    operation.as_str(),
                    decider.id,
                    entry.event.event_id
                ));
            }
        }
        for device in &self.devices {
            let query = AuditQuery {
                operation: Some(Operation::RoleChange),
                limit: 1000,
                ..AuditQuery::default()
            };
            let audited = read(&device.store, |c| audit::query(c, &query))?;
            if (audited.len() as u64) < device.role_changes {
                return Err(format!(
                    "d{} changed role {} times but audited {}",
                    device.id,
                    device.role_changes,
                    audited.len()
                ));
            }
            let became_master = audited
                .iter()
                .filter(|a| a.details["to"] == "master")
                .count();
            let query = AuditQuery {
                operation: Some(Operation::Election),
                limit: 1000,
                ..AuditQuery::default()
            };
            let won = read(&device.store, |c| audit::query(c, &query))?
                .iter()
                .filter(|a| !a.details["won"].is_null())
                .count();
            let resumed = audited
                .iter()
                .filter(|a| a.details["reason"] == "restart of a lone master")
                .count();
            if won + resumed < became_master {
                return Err(format!(
                    "d{} became master {became_master} times but audited {won} elections won",
                    device.id
                ));
            }
            // Honest devices only make events that keep the data rules: a master that found an
            // invalid one means local writes and the master's validation disagree.
            let query = AuditQuery {
                operation: Some(Operation::Alarm),
                limit: 1000,
                ..AuditQuery::default()
            };
            if let Some(alarm) = read(&device.store, |c| audit::query(c, &query))?
                .into_iter()
                .find(|a| a.details["why"] == "invalid event")
            {
                return Err(format!(
                    "d{} refused an honest event: {}",
                    device.id, alarm.details
                ));
            }
        }
        Ok(())
    }

    fn failure(&self, error: &str) -> String {
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

fn read<T>(
    store: &Store,
    f: impl FnOnce(&rms_storage::Connection) -> Result<T, StorageError>,
) -> Result<T, String> {
    store.read(f).map_err(|e| e.to_string())
}

/// What two devices' logs must agree on.
fn summary(log: &[LogEntry]) -> Vec<(u64, String, EventStatus, Option<String>, Epoch, bool)> {
    log.iter()
        .map(|e| {
            (
                e.seq(),
                e.event.event_id.to_string(),
                e.event.status,
                e.event.reason.map(|r| r.as_str().to_owned()),
                e.epoch,
                e.forced,
            )
        })
        .collect()
}

/// Invariant 2: replaying the master log from nothing gives the master's products, so no event
/// was applied twice (or skipped).
fn check_replay(store: &Store, log: &[LogEntry]) -> Result<(), String> {
    let mut replayed = Products::new();
    for entry in log.iter().filter(|e| e.event.status == EventStatus::Synced) {
        let at = rfc3339_from_ms(entry.event.created_at_ms);
        if entry.forced {
            rules::apply_forced(&entry.event.payload, &mut replayed, &at);
        } else if let Err(reason) = rules::apply(&entry.event.payload, &mut replayed, &at) {
            return Err(format!(
                "replaying accepted entry {} ({}) is refused: {reason}",
                entry.seq(),
                entry.event.event_id
            ));
        }
    }
    let base = read(store, |c| products::list_in(c, Table::Base))?;
    let replayed: Vec<_> = replayed.into_values().collect();
    if replayed != base {
        return Err(format!(
            "replaying the log gives\n{replayed:?}\nbut the master has\n{base:?}"
        ));
    }
    Ok(())
}

fn describe(message: &Message) -> String {
    let epoch = message
        .epoch()
        .map_or_else(|| "-".to_owned(), |e| e.to_string());
    let extra = match message {
        Message::Push { events, .. } => format!(" {} events", events.len()),
        Message::PushAck { verdicts, .. } => format!(" {} verdicts", verdicts.len()),
        Message::Pull { since, .. } => format!(" since {since}"),
        Message::Events {
            entries,
            truncate_to,
            ..
        } => format!(" {} entries truncate {truncate_to:?}", entries.len()),
        Message::SyncUpdate { entries, .. } => format!(" {} entries", entries.len()),
        Message::CriticalEvent { entry, .. } => format!(" seq {}", entry.seq()),
        Message::Error { code, .. } => format!(" {code}"),
        Message::Heartbeat { role, log_head, .. } => format!(" {} head {log_head}", role.as_str()),
        Message::PreVoteReply {
            master_heard_ms_ago,
            position,
            accepted_unlogged,
            ..
        } => format!(
            " heard {master_heard_ms_ago:?} head {} carried {}",
            position.log_head,
            accepted_unlogged.len()
        ),
        _ => String::new(),
    };
    format!("{}[{epoch}]{extra}", message.kind())
}

/// What a run went through, to show the simulator reaches the cases it claims to test.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    runs: u64,
    devices: u64,
    role_changes: u64,
    answered_sales: u64,
    log_entries: u64,
    rejected: u64,
    kept_split_brain: u64,
    truncations: u64,
    virtual_ms: u64,
    /// Runs without a partition, and those of them with at least one pause.
    runs_without_partition: u64,
    paused_runs_without_partition: u64,
    /// Forced entries excused because the master that kept them never heard from their origin.
    forced_origin_not_reached: u64,
    /// Forced entries excused because the master that first accepted them led an island.
    forced_island: u64,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.runs += other.runs;
        self.devices += other.devices;
        self.role_changes += other.role_changes;
        self.answered_sales += other.answered_sales;
        self.log_entries += other.log_entries;
        self.rejected += other.rejected;
        self.kept_split_brain += other.kept_split_brain;
        self.truncations += other.truncations;
        self.virtual_ms += other.virtual_ms;
        self.runs_without_partition += other.runs_without_partition;
        self.paused_runs_without_partition += other.paused_runs_without_partition;
        self.forced_origin_not_reached += other.forced_origin_not_reached;
        self.forced_island += other.forced_island;
    }
}

impl Sim {
    fn stats(&self) -> Result<Stats, String> {
        let master = &self.devices[0];
        let log = read(&master.store, |c| events::log_after(c, 0, usize::MAX))?;
        let mut truncations = 0;
        for device in &self.devices {
            let query = AuditQuery {
                operation: Some(Operation::Pull),
                limit: 1000,
                ..AuditQuery::default()
            };
            truncations += read(&device.store, |c| audit::query(c, &query))?
                .iter()
                .filter(|a| a.outcome == rms_domain::Outcome::Conflict)
                .count() as u64;
        }
        Ok(Stats {
            runs: 1,
            devices: self.devices.len() as u64,
            role_changes: self.devices.iter().map(|d| d.role_changes).sum(),
            answered_sales: self.answered.len() as u64,
            log_entries: log.len() as u64,
            rejected: log
                .iter()
                .filter(|e| e.event.status == EventStatus::Rejected)
                .count() as u64,
            kept_split_brain: log.iter().filter(|e| e.forced).count() as u64,
            truncations,
            virtual_ms: self.now,
            runs_without_partition: u64::from(!self.partitioned),
            paused_runs_without_partition: u64::from(!self.partitioned && self.pauses > 0),
            forced_origin_not_reached: self
                .excused
                .values()
                .filter(|rule| rule.starts_with("origin"))
                .count() as u64,
            forced_island: self
                .excused
                .values()
                .filter(|rule| rule.starts_with("island"))
                .count() as u64,
        })
    }
}

/// One whole run: chaos, heal, quiescence, final checks.
fn run(seed: u64) -> Result<Stats, String> {
    let mut sim = Sim::new(seed)?;
    let outcome = run_phases(&mut sim).and_then(|()| sim.stats());
    outcome.map_err(|error| sim.failure(&error))
}

fn run_phases(sim: &mut Sim) -> Result<(), String> {
    sim.drop_percent = sim.rng.below(15);
    sim.dup_percent = sim.rng.below(10);
    sim.delay_max_ms = 1 + sim.rng.below(80);
    let chaos_until = 10_000 + sim.rng.below(20_000);
    let mut next_action = 0;
    let mut next_stock_check = 0;
    while sim.now < chaos_until {
        sim.step()?;
        while next_action <= sim.now {
            sim.act()?;
            next_action += ACTION_TICK_MS;
        }
        if sim.now >= next_stock_check {
            sim.check_master_stock()?;
            next_stock_check = sim.now + 1_000;
        }
    }
    // Heal: links back, crashed devices restarted, paused ones resumed, clocks sane, no losses.
    sim.cut.clear();
    sim.drop_percent = 0;
    sim.dup_percent = 0;
    for index in 0..sim.devices.len() {
        sim.devices[index].paused_until = None;
        sim.devices[index].skew_ms = 0;
        if sim.devices[index].node.is_none() {
            sim.start(index)?;
        }
    }
    sim.log("healed everything".into());
    let healed_at = sim.now;
    let mut next_check = sim.now;
    loop {
        sim.step()?;
        if sim.now >= next_check {
            next_check = sim.now + 500;
            sim.check_master_stock()?;
            if sim.quiet()? {
                break;
            }
        }
        if sim.now > healed_at + CONVERGE_MS {
            return Err(format!(
                "no single master and converged store {CONVERGE_MS} ms after healing"
            ));
        }
    }
    sim.check_final()
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("RMS_SIM_SEED") {
        return vec![
            seed.trim()
                .parse()
                .expect("RMS_SIM_SEED must be an integer"),
        ];
    }
    let count = std::env::var("RMS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (1..=count).collect()
}

#[test]
fn simulation_keeps_every_invariant() {
    // Proves the sync core end to end over real storage: seeded chaos, then heal and check.
    let seeds = seeds();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len().max(1));
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                scope.spawn(move || {
                    let mut stats = Stats::default();
                    let mut failures = Vec::new();
                    for seed in mine {
                        match run(seed) {
                            Ok(run) => stats.add(run),
                            Err(failure) => failures.push(failure),
                        }
                    }
                    (stats, failures)
                })
            })
            .collect();
        let mut total = Stats::default();
        let mut failures = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok((stats, mut failed)) => {
                    total.add(stats);
                    failures.append(&mut failed);
                }
                Err(_) => failures.push("a simulation thread panicked".into()),
            }
        }
        eprintln!("simulated: {total:?}");
        failures
    });
    if let Some(first) = failures.first() {
        let seeds: Vec<&str> = failures
            .iter()
            .filter_map(|f| f.strip_prefix("simulation seed ")?.split(' ').next())
            .collect();
        eprintln!("failing seeds: {}", seeds.join(" "));
        panic!(
            "{} of {} seeds failed; the first:\n{first}",
            failures.len(),
            seeds.len()
        );
    }
}

#[test]
fn a_lone_device_keeps_selling_as_master_of_its_island() {
    // Invariant 7: with every link cut, a device becomes master of its island and sales are accepted.
    let mut sim = Sim::new(7).expect("sim");
    sim.partitioned = true;
    for a in 0..sim.devices.len() {
        for b in 0..sim.devices.len() {
            if a != b {
                sim.cut.insert((device_id(a), device_id(b)));
            }
        }
    }
    while sim.now < 3 * MASTER_TIMEOUT_MS + 500 {
        sim.step().expect("step");
    }
    let node = sim.devices[0].node.as_ref().expect("running");
    assert_eq!(
        node.role(),
        Role::Master,
        "an isolated device leads its own island"
    );
    let now = sim.now_of(0);
    let store = Arc::clone(&sim.devices[0].store);
    let create = Command::CreateProduct(NewProduct {
        sku: "tea".into(),
        name: "Tea".into(),
        price_cents: 1,
        stock: 2,
        user_id: None,
    });
    store
        .write(|tx| local::record(tx, Role::Master, now.wall_ms, create))
        .expect("create");
    let sale = Command::Sell(NewSale {
        user_id: "ann".into(),
        lines: vec![NewSaleLine {
            sku: "tea".into(),
            qty: 1,
        }],
    });
    let recorded = store
        .write(|tx| local::record(tx, Role::Master, now.wall_ms, sale))
        .expect("sale");
    assert_eq!(
        recorded.event.status,
        EventStatus::Synced,
        "accepted at once by the island master"
    );
}
