//! The simulated network: packets in flight, their delivery (late, duplicated, reordered, or
//! lost), full and one-way partitions, and pauses (a stopped process reads nothing until it
//! resumes).

use std::collections::BTreeSet;

use rms_domain::DeviceId;
use rms_sync::Message;

use super::harness::Sim;

pub(super) struct Packet {
    pub(super) from: DeviceId,
    pub(super) to: DeviceId,
    pub(super) json: String,
}

impl Sim {
    /// Delivers packets to one device, as one input.
    pub(super) fn deliver(&mut self, packets: Vec<Packet>) -> Result<(), String> {
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
            // As the driver hands them over: pushes grouped, anything else alone.
            rms_transport::step::handle_arrived(node, messages, now)
                .map_err(|e| format!("d{to} handling messages: {e}"))?;
        }
        self.after_input(index)
    }

    pub(super) fn send(&mut self, from: DeviceId, to: DeviceId, json: String) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        if self.refuses(from, to) {
            self.last_drop.insert((from, to), self.now);
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

    pub(super) fn wake_paused(&mut self) -> Result<(), String> {
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

    pub(super) fn partition(&mut self) {
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

    pub(super) fn heal_links(&mut self) {
        self.cut.clear();
        self.log("heal links".into());
    }

    pub(super) fn pause(&mut self, index: usize) {
        if self.devices[index].node.is_some() && self.devices[index].paused_until.is_none() {
            // From well under the master timeout (a hiccup) to several of them.
            let until = self.now + 100 + self.rng.below(2_900);
            self.devices[index].paused_until = Some(until);
            self.pauses += 1;
            self.log(format!("pause d{} until {until}", index + 1));
        }
    }
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
