//! Finding 4: a trusted device that repeats a refused request wrote an audit row each time, and
//! the audit log is append-only. Refusals and alarms are now rate-limited per certificate, per
//! device and per source, and what is not written is counted in `/metrics`.

use serde_json::Value;

use rms_tests::{NodeProcess, tls};

use super::{Insider, master, pull_all};

fn audit_rows(node: &NodeProcess) -> usize {
    let (status, rows) = node.get("/api/v1/audit?limit=1000");
    assert_eq!(status, 200, "{rows}");
    rows.as_array().map_or(0, Vec::len)
}

fn metric(node: &NodeProcess, name: &str) -> u64 {
    let text = node.get_text("/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn a_thousand_refused_exchanges_write_a_handful_of_rows_and_count_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let node = master(dir.path());
    let thief = Insider::approved(&node, 6);
    let before = audit_rows(&node);

    // Device 6 speaks for device 7, a thousand times, on one kept-alive connection.
    let lying = Insider {
        id: 7,
        config: std::sync::Arc::clone(&thief.config),
    };
    let body = lying.exchange_body(&[pull_all(&node)]);
    let request = format!("{}{body}", Insider::exchange_head(body.len()));
    let mut stream = thief.connect(&node, std::time::Duration::from_secs(10));
    for sent in 0..1000 {
        assert!(tls::send(&mut stream, request.as_bytes()));
        let (status, body) = tls::read_response(&mut stream)
            .unwrap_or_else(|| panic!("the connection closed after {sent} refusals"));
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("device_id_mismatch"), "{text}");
    }

    let written = audit_rows(&node) - before;
    let limit = rms_transport::audit_gate::PER_SUBJECT_PER_MINUTE as usize;
    assert!(
        (1..=limit).contains(&written),
        "{written} audit rows for 1 000 refusals"
    );
    let alarms: Vec<Value> = node
        .get("/api/v1/audit?limit=1000")
        .1
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        alarms
            .iter()
            .any(|row| row.to_string().contains("device_id_mismatch")),
        "the first refusal is audited"
    );
    assert!(metric(&node, "rms_audit_suppressed_total") >= 1000 - limit as u64);
}
