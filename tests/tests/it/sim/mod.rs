//! The deterministic simulator (TigerBeetle's VOPR, quinn-proto's `Pair`, canonical/raft's
//! fixture): 2 to 7 devices, each a real `SyncNode` over a real rms-storage database (in memory),
//! a seeded network that drops, duplicates, delays and reorders messages, full and one-way
//! partitions, crashes with restart from the persisted state, pauses (SIGSTOP), clock skew and
//! jumps, and a workload of catalogue edits, scarce-stock sales from several devices, stock
//! adjustments and handovers; in one run of three, a device's life too (replaced by an empty
//! one, restored from an older copy, revoked while it runs). Invariants are checked after every step and at quiescence; a failure
//! prints the seed and the last steps.
//!
//! `RMS_SIM_SEEDS=N` runs N seeds (default [`DEFAULT_SEEDS`]) from `RMS_SIM_SEED_BASE + 1`
//! (default 0, so seeds 1 to N); `RMS_SIM_SEED=S` replays one. A run asserts what its report
//! counts (`Stats::check`): a set of seeds that answered no sale, changed no role where its
//! seeds set faults, or ran no seed at all fails.
//!
//! This file holds the parameters, a whole run and the tests; `harness` the devices, the
//! simulator's state, its loop and its trace; `network` the packets, partitions and pauses;
//! `workload` the random actions; `lifecycle` the replacements, restores and revocations and what
//! they excuse; `invariants` every check, numbered at its top.

mod harness;
mod invariants;
mod lifecycle;
mod network;
mod workload;

use std::sync::Arc;

use rms_domain::{EventStatus, NewProduct, NewSale, NewSaleLine, Operation, Role};
use rms_storage::audit::AuditQuery;
use rms_storage::local::{self, Command};
use rms_storage::{audit, events};

use harness::{Sim, device_id, read};

/// Seeds per run when `RMS_SIM_SEEDS` is not set: about two minutes on two cores (release build,
/// `make test`). `make sim-long` runs 10 000.
const DEFAULT_SEEDS: u64 = 1_000;

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
    /// Forced entries excused because a write they came after was lost with its master.
    forced_lost_before: u64,
    /// Forced entries excused by a partition.
    forced_split_brain: u64,
    /// Forced entries excused because a master since their acceptance lost its database.
    forced_disk_lost: u64,
    /// Devices replaced by an empty one, restored from a copy, revoked while running; starts
    /// of either that a wrong clock refused; answered sales lost with a disk.
    replaced: u64,
    restored: u64,
    revoked: u64,
    refused_starts: u64,
    lost_with_disk: u64,
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
        self.forced_lost_before += other.forced_lost_before;
        self.forced_split_brain += other.forced_split_brain;
        self.forced_disk_lost += other.forced_disk_lost;
        self.replaced += other.replaced;
        self.restored += other.restored;
        self.revoked += other.revoked;
        self.refused_starts += other.refused_starts;
        self.lost_with_disk += other.lost_with_disk;
    }

    /// What a set of seeds must have gone through for its pass to mean anything: a run that
    /// did nothing cannot pass. Every seed answers sales and logs entries; among 50 or more
    /// seeds, roles change (crashes, pauses, handovers), logs are truncated, sales are
    /// rejected, some runs have a partition, and some have none while others pause a device.
    fn check(&self, seeds: u64) -> Result<(), String> {
        let mut missing = Vec::new();
        if seeds == 0 {
            missing.push("no seed ran".to_owned());
        }
        if self.runs != seeds {
            missing.push(format!("{} of {seeds} seeds ran", self.runs));
        }
        if self.answered_sales < self.runs || self.log_entries < self.runs {
            missing.push("a seed answered no sale or logged nothing".to_owned());
        }
        if seeds >= 50 {
            let counts = [
                ("role changes", self.role_changes),
                ("truncations", self.truncations),
                ("rejections", self.rejected),
                ("runs without a partition", self.runs_without_partition),
                (
                    "runs with a partition",
                    self.runs - self.runs_without_partition,
                ),
                ("replacements", self.replaced),
                ("restores", self.restored),
                ("revocations", self.revoked),
                (
                    "paused runs without a partition",
                    self.paused_runs_without_partition,
                ),
            ];
            for (what, count) in counts {
                if count == 0 {
                    missing.push(format!("no {what}"));
                }
            }
            if self.role_changes < self.runs {
                missing.push(format!(
                    "{} role changes in {} runs: fewer than one a run",
                    self.role_changes, self.runs
                ));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the simulator did not do what it claims: {}",
                missing.join("; ")
            ))
        }
    }
}

impl Sim {
    fn stats(&self) -> Result<Stats, String> {
        let master = &self.devices[self.final_master()?];
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
            role_changes: self.devices.iter().map(|d| d.role_changes).sum::<u64>()
                + self.lifecycle.role_changes_lost,
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
            forced_lost_before: self
                .excused
                .values()
                .filter(|rule| rule.starts_with("lost before"))
                .count() as u64,
            forced_disk_lost: self
                .excused
                .values()
                .filter(|rule| rule.starts_with("disk lost"))
                .count() as u64,
            forced_split_brain: self
                .excused
                .values()
                .filter(|rule| rule.starts_with("split brain"))
                .count() as u64,
            replaced: self.lifecycle.replaced,
            restored: self.lifecycle.restored,
            revoked: self.lifecycle.revoked,
            refused_starts: self.lifecycle.refused_starts,
            lost_with_disk: self.lifecycle.lost_with_disk.len() as u64,
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
    let number = |name: &str, default: u64| match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be an integer, not {value:?}")),
        Err(_) => default,
    };
    let count = number("RMS_SIM_SEEDS", DEFAULT_SEEDS);
    let base = number("RMS_SIM_SEED_BASE", 0);
    (base + 1..=base + count).collect()
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
        if let Err(empty) = total.check(seeds.len() as u64) {
            failures.push(empty);
        }
        failures
    });
    if let Some(first) = failures.first() {
        let failing: Vec<&str> = failures
            .iter()
            .filter_map(|f| f.strip_prefix("simulation seed ")?.split(' ').next())
            .collect();
        eprintln!("failing seeds: {}", failing.join(" "));
        panic!(
            "{} failures in {} seeds; the first:\n{first}",
            failures.len(),
            seeds.len()
        );
    }
}

#[test]
fn a_lone_device_keeps_selling_as_master_of_its_island() {
    // Invariant 7: with every link cut, a device becomes master of its island and sales are
    // accepted. The devices formed their store first: a device that never heard another is
    // joining, and never elects itself (issue #27).
    let mut sim = Sim::new(7).expect("sim");
    while sim.devices.iter().any(|d| {
        d.node
            .as_ref()
            .is_some_and(|n| n.joining() || n.master_id().is_none())
    }) {
        assert!(sim.now < 10 * MASTER_TIMEOUT_MS, "the store formed");
        sim.step().expect("step");
    }
    let formed_ms = sim.now;
    sim.partitioned = true;
    for a in 0..sim.devices.len() {
        for b in 0..sim.devices.len() {
            if a != b {
                sim.cut.insert((device_id(a), device_id(b)));
            }
        }
    }
    while sim.now < formed_ms + 3 * MASTER_TIMEOUT_MS + 500 {
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
