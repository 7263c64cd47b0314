//! Finding 3: one exchange of 64 pulls made the master answer 11 MB, and 16 at once took it from
//! 31 MB to a 768 MB peak. An exchange's answer is now bounded in bytes, and a device has at
//! most two exchanges in flight: the master's memory under the same attack, on a 10 000-entry
//! log, stays within a budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rms_tests::{NodeProcess, wait_for};

use super::{Insider, master, pull_all, sell};

/// Entries in the master's log before the attack.
const LOG_ENTRIES: u64 = 10_000;
/// What the master may grow by under the attack, above its idle size (the budget).
const BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// The resident size of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn log_head(node: &NodeProcess) -> u64 {
    node.get("/api/v1/sync/status").1["cursor"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn sixteen_exchanges_of_sixty_four_pulls_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let node = master(dir.path());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while log_head(&node) < LOG_ENTRIES {
                    for _ in 0..50 {
                        assert_eq!(sell(&node), 201);
                    }
                }
            });
        }
    });
    let thief = Insider::approved(&node, 6);
    wait_for("the log at 10 000 entries", Duration::from_secs(60), || {
        log_head(&node) >= LOG_ENTRIES
    });
    // The control: one pull of the whole log is answered (a page of it).
    let (status, control) = thief.exchange(&node, &[pull_all(&node)]);
    assert_eq!(status, 200);
    let control = String::from_utf8_lossy(&control);
    assert!(
        control.contains("\"type\":\"events\""),
        "the pull is answered: {control}"
    );
    let idle = rss(node.pid());

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (Arc::clone(&peak), Arc::clone(&done), node.pid());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let pulls = vec![pull_all(&node); 64];
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|scope| {
        let attacks: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| thief.exchange(&node, &pulls)))
            .collect();
        attacks.into_iter().map(|a| a.join().unwrap()).collect()
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(idle);

    let answered = answers.iter().filter(|(status, _)| *status == 200).count();
    let turned_away = answers.iter().filter(|(status, _)| *status == 429).count();
    assert!(answered >= 1, "the device is still served");
    assert_eq!(
        answered + turned_away,
        16,
        "every exchange is answered or turned away"
    );
    let largest = answers.iter().map(|(_, a)| a.len()).max().unwrap_or(0);
    let bound = rms_transport::api::EXCHANGE_ANSWER_BYTES_MAX + rms_sync::BATCH_BYTES_MAX + 65_536;
    assert!(largest <= bound, "an answer of {largest} bytes");
    assert!(
        largest > rms_sync::BATCH_BYTES_MAX / 2,
        "the pulls were answered, a page or more: {largest} bytes"
    );
    eprintln!(
        "16 × 64 pulls on {LOG_ENTRIES} entries: {answered} answered, {turned_away} turned away, \
         largest answer {largest} B, master {} MB idle, +{} MB at its peak",
        idle >> 20,
        grown >> 20
    );
    assert!(grown < BUDGET_BYTES, "the master grew by {grown} bytes");
    assert_eq!(sell(&node), 201, "the master still sells");
}
