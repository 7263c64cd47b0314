//! The pushes of the simulated devices: each device's batches of sale events, sent one push in
//! flight per device as real clients do (S1, S4, S7, H2, and S1 with chained, signed events).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::fleet::{self, Fleet, Kind};

/// Pushes `batches` batches of `batch` sale events from every device of `fleet`, one push in
/// flight per device (as real clients do); returns when every batch is acknowledged. The pushes
/// are encoded before the clock starts: the simulated devices share the machine with the node,
/// and the time they would spend building JSON is not the node's.
pub(crate) async fn push_all(
    fleet: &mut Fleet,
    epoch: &Value,
    batch: usize,
    batches: usize,
) -> anyhow::Result<Duration> {
    let pushes = sale_pushes(&fleet.ids, epoch, batch, batches);
    push_texts(fleet, pushes).await
}

/// Each device's `batches` pushes of `batch` sale events (unlinked, unsigned).
pub(crate) fn sale_pushes(
    ids: &[u16],
    epoch: &Value,
    batch: usize,
    batches: usize,
) -> Vec<Vec<String>> {
    ids.iter()
        .map(|&id| {
            (0..batches as u64)
                .map(|b| {
                    let events = (1..=batch as u64)
                        .map(|i| fleet::sale_event(id, b * batch as u64 + i, "bench", 1, 0))
                        .collect();
                    fleet::push(epoch, events)
                })
                .collect()
        })
        .collect()
}

/// Sends each device's `pushes` in order, one in flight per device; returns when every one is
/// acknowledged.
pub(crate) async fn push_texts(
    fleet: &mut Fleet,
    pushes: Vec<Vec<String>>,
) -> anyhow::Result<Duration> {
    let batches = pushes.first().map_or(0, Vec::len);
    let mut pushes: Vec<std::vec::IntoIter<String>> =
        pushes.into_iter().map(Vec::into_iter).collect();
    let mut send = |fleet: &Fleet, device: usize| match pushes[device].next() {
        Some(text) => fleet.send(device, text),
        None => Ok(()),
    };
    fleet.drain();
    let started = Instant::now();
    for device in 0..fleet.len() {
        send(fleet, device)?;
    }
    let mut unacked: Vec<usize> = vec![batches; fleet.len()];
    let mut pending = fleet.len();
    while pending > 0 {
        let delivery = tokio::time::timeout(Duration::from_secs(60), fleet.deliveries.recv())
            .await
            .context("no push_ack within 60 s")?
            .context("the fleet is gone")?;
        if delivery.kind != Kind::PushAck {
            continue;
        }
        unacked[delivery.device] -= 1;
        if unacked[delivery.device] == 0 {
            pending -= 1;
        } else {
            send(fleet, delivery.device)?;
        }
    }
    Ok(started.elapsed())
}
