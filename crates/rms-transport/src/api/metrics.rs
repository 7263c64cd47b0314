//! `GET /metrics`: what a scrape reports, in the OpenMetrics text format, through
//! `prometheus-client` (the Prometheus project's own Rust client).
//!
//! Two kinds of values: the latency histograms ([`Metrics`]), filled by the driver as it works
//! and shared with the handler; and a [`Scrape`] of counts read at request time (the database's
//! log and audit counts, the driver's status), registered afresh for each scrape.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use rms_domain::{DeviceId, Role};

use crate::status::Metrics;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Master-log entries of one verdict (and reject reason).
#[derive(Debug, Clone)]
pub struct LogCount {
    /// `accepted`, `rejected`, ...
    pub verdict: String,
    pub reason: Option<String>,
    pub count: u64,
}

/// What one scrape reads from the database and the driver's status.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub device_id: DeviceId,
    pub role: Role,
    pub term: u64,
    pub connected_devices: usize,
    pub pending_events: u64,
    pub oldest_pending: Duration,
    pub log_head: u64,
    pub log_events: Vec<LogCount>,
    pub elections_won: u64,
    pub role_changes: u64,
    /// Change-feed streams open (`GET /changes` and embedding apps).
    pub feed_subscribers: usize,
    /// The head-office uplink, when configured.
    pub uplink: Option<crate::tasks::hq::UplinkStatus>,
    /// Refusals and alarms the audit gate did not write (`crate::audit_gate`).
    pub audit_suppressed: u64,
    pub now_ms: u64,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The exposition of `scrape` and `metrics`.
pub fn render(scrape: &Scrape, metrics: &Metrics) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    // The exposition lists the metrics in the order they are registered.
    register_device(&mut registry, scrape);
    register_state(&mut registry, scrape);
    register_log(&mut registry, scrape);
    register_latency(&mut registry, metrics);
    register_refused(&mut registry, scrape, metrics);
    if let Some(uplink) = &scrape.uplink {
        register_uplink(&mut registry, uplink, scrape.now_ms);
    }
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

/// Who this device is: `rms_info` (its id and the rms version) and `rms_role`.
fn register_device(registry: &mut Registry, scrape: &Scrape) {
    let info = Family::<Labels, Gauge>::default();
    let device = scrape.device_id.to_string();
    info.get_or_create(&labels(&[
        ("device_id", &device),
        ("version", env!("CARGO_PKG_VERSION")),
    ]))
    .set(1);
    registry.register("rms_info", "This device and the rms version", info);
    let roles = Family::<Labels, Gauge>::default();
    for role in [Role::Master, Role::Client] {
        let value = i64::from(role == scrape.role);
        roles
            .get_or_create(&labels(&[("role", role.as_str())]))
            .set(value);
    }
    registry.register("rms_role", "1 for this device's role", roles);
}

/// Where this device stands now: its term, links, feed subscribers, pending events and log head.
fn register_state(registry: &mut Registry, scrape: &Scrape) {
    let gauges = [
        (
            "rms_term",
            "The term of the epoch this device is in",
            scrape.term,
        ),
        (
            "rms_connected_devices",
            "Devices with an open link to this one",
            scrape.connected_devices as u64,
        ),
        (
            "rms_feed_subscribers",
            "Change-feed streams open (GET /api/v1/changes and embedding apps)",
            scrape.feed_subscribers as u64,
        ),
        (
            "rms_pending_events",
            "This device's own events waiting for the master's verdict",
            scrape.pending_events,
        ),
        (
            "rms_log_head",
            "Entries in this device's copy of the master log",
            scrape.log_head,
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(name, help, ConstGauge::new(to_i64(value)));
    }
    registry.register(
        "rms_oldest_pending_seconds",
        "Age of the oldest pending event (0 when none)",
        ConstGauge::new(scrape.oldest_pending.as_secs_f64()),
    );
}

/// What this device's log and audit log count: entries by verdict, elections, role changes.
fn register_log(registry: &mut Registry, scrape: &Scrape) {
    let log_events = Family::<Labels, Gauge>::default();
    for count in &scrape.log_events {
        let mut set = labels(&[("verdict", &count.verdict)]);
        set.extend(
            count
                .reason
                .iter()
                .map(|r| ("reason".to_owned(), r.clone())),
        );
        log_events.get_or_create(&set).set(to_i64(count.count));
    }
    registry.register(
        "rms_log_events",
        "Master-log entries by verdict and reject reason",
        log_events,
    );
    registry.register(
        "rms_elections_won",
        "Elections this device won (from its audit log)",
        ConstCounter::new(scrape.elections_won),
    );
    registry.register(
        "rms_role_changes",
        "Role changes of this device (from its audit log)",
        ConstCounter::new(scrape.role_changes),
    );
}

/// The latency histograms the driver fills.
fn register_latency(registry: &mut Registry, metrics: &Metrics) {
    registry.register(
        "rms_push_latency_seconds",
        "A client's push until its acknowledgement",
        metrics.push_latency.histogram().clone(),
    );
    registry.register(
        "rms_apply_seconds",
        "Deciding or applying one incoming batch, commit included",
        metrics.apply.histogram().clone(),
    );
}

/// What the node refused to stay within its limits (issue #29).
fn register_refused(registry: &mut Registry, scrape: &Scrape, metrics: &Metrics) {
    let counters = [
        (
            "rms_audit_suppressed",
            "Refusals and alarms not written to the audit log: beyond their rate limit",
            scrape.audit_suppressed,
        ),
        (
            "rms_connections_refused",
            "Store-port connections closed at accept: their source had all the slots it may",
            metrics.refused.connections.get(),
        ),
        (
            "rms_exchanges_refused",
            "REST exchanges refused: their device had as many in flight as it may",
            metrics.refused.exchanges.get(),
        ),
    ];
    for (name, help, value) in counters {
        registry.register(name, help, ConstCounter::new(value));
    }
}

/// The head-office uplink's gauges and counters (issue #15).
fn register_uplink(registry: &mut Registry, uplink: &crate::tasks::hq::UplinkStatus, now_ms: u64) {
    let seconds_since =
        |at: Option<u64>| at.map_or(0.0, |at| now_ms.saturating_sub(at) as f64 / 1000.0);
    registry.register(
        "rms_hq_uplink_active",
        "1 while this device (the master) sends its log to head office",
        ConstGauge::new(i64::from(uplink.active)),
    );
    registry.register(
        "rms_hq_uplink_lag_entries",
        "Master-log entries head office does not hold yet",
        ConstGauge::new(to_i64(uplink.lag_entries)),
    );
    registry.register(
        "rms_hq_uplink_lag_seconds",
        "How long head office has been behind this log (0 when caught up)",
        ConstGauge::new(seconds_since(uplink.behind_since_ms)),
    );
    registry.register(
        "rms_hq_uplink_last_contact_age_seconds",
        "Time since head office last answered (0 before the first answer)",
        ConstGauge::new(seconds_since(uplink.last_contact_ms)),
    );
    registry.register(
        "rms_hq_catalog_version",
        "The last head-office catalogue version logged in this store",
        ConstGauge::new(to_i64(uplink.catalog_version)),
    );
    registry.register(
        "rms_hq_uplink_batches",
        "Batches head office committed since this node started",
        ConstCounter::new(uplink.batches),
    );
    registry.register(
        "rms_hq_uplink_errors",
        "Failed requests to head office since this node started",
        ConstCounter::new(uplink.errors),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape() -> Scrape {
        Scrape {
            device_id: DeviceId::new(3).expect("not 0"),
            role: Role::Client,
            term: 4,
            connected_devices: 2,
            feed_subscribers: 0,
            pending_events: 1,
            oldest_pending: Duration::from_millis(1500),
            log_head: 9,
            log_events: vec![LogCount {
                verdict: "rejected".into(),
                reason: Some("out_of_stock".into()),
                count: 2,
            }],
            elections_won: 1,
            role_changes: 3,
            uplink: Some(crate::tasks::hq::UplinkStatus {
                active: true,
                lag_entries: 7,
                ..Default::default()
            }),
            audit_suppressed: 5,
            now_ms: 0,
        }
    }

    #[test]
    fn a_scrape_renders_every_family() {
        let metrics = Metrics::default();
        metrics.apply.observe(Duration::from_micros(300));
        metrics.apply.observe(Duration::from_millis(20));
        metrics.apply.observe(Duration::from_secs(9));
        metrics.refused.exchanges.add();
        let text = render(&scrape(), &metrics).expect("renders");
        for line in [
            "rms_role{role=\"client\"} 1",
            "rms_role{role=\"master\"} 0",
            "rms_term 4",
            "rms_oldest_pending_seconds 1.5",
            "rms_log_events{verdict=\"rejected\",reason=\"out_of_stock\"} 2",
            "rms_elections_won_total 1",
            "rms_apply_seconds_bucket{le=\"0.0005\"} 1",
            "rms_apply_seconds_bucket{le=\"0.025\"} 2",
            "rms_apply_seconds_bucket{le=\"+Inf\"} 3",
            "rms_apply_seconds_count 3",
            "rms_hq_uplink_active 1",
            "rms_hq_uplink_lag_entries 7",
            "rms_audit_suppressed_total 5",
            "rms_exchanges_refused_total 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
