//! The workload and the faults the simulator injects at random: catalogue edits, stock
//! adjustments and scarce-stock sales from any device, crashes and restarts, clock jumps and
//! handovers, with partitions and pauses from the network.

use rms_domain::{NewProduct, NewSale, NewSaleLine, ProductPatch, Role, StockAdjustment};
use rms_storage::local::Command;
use rms_storage::{StorageError, products};

use super::harness::{Sim, device_id};
use super::{SKUS, WALL_BASE_MS};

impl Sim {
    pub(super) fn act(&mut self) -> Result<(), String> {
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
            2_620..=2_622 if self.lifecycle.enabled => self.replace(index),
            2_623..=2_637 if self.lifecycle.enabled => self.take_backup(index),
            2_638..=2_640 if self.lifecycle.enabled => self.restore(index),
            2_641..=2_642 if self.lifecycle.enabled => self.revoke(index),
            _ => Ok(()),
        }
    }

    fn local_write(&mut self, index: usize) -> Result<(), String> {
        // A revoked device that knows it refuses its tills' writes (`403 device_revoked`).
        if self.devices[index].paused_until.is_some() || self.knows_revoked(index)? {
            return Ok(());
        }
        let command = self.command(index);
        let now = self.now_of(index);
        let device = &mut self.devices[index];
        let (Some(node), store) = (device.node.as_mut(), &device.store) else {
            return Ok(());
        };
        // A device not yet in its store answers its tills `503 joining`.
        if node.joining() {
            return Ok(());
        }
        // The driver's own local write path: the role, the transaction, then the core.
        match rms_transport::step::local_write(node, store, command, now) {
            Ok(rms_transport::step::LocalWrite { recorded, core }) => {
                let what = recorded.event.payload.kind();
                self.log(format!(
                    "d{} wrote {} {} ({})",
                    index + 1,
                    what,
                    recorded.event.event_id,
                    recorded.event.status.as_str()
                ));
                self.note_event(&recorded.event)?;
                if let Some(sale) = &recorded.sale {
                    self.answered
                        .push((sale.sale_id.clone(), self.devices[index].id));
                }
                core.map_err(|e| format!("d{} local write: {e}", index + 1))?;
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
            // The owner trusts or revokes a device certificate, from any device: a few made-up
            // certificates, each claiming one of a few made-up device ids.
            33..=35 => {
                let certificate = 1 + self.rng.below(6) as u8;
                let device = rms_domain::DeviceId::new(40 + self.rng.below(3) as u16)
                    .unwrap_or_else(|| device_id(index));
                let revoke = self.rng.below(4) == 0;
                Command::Trust {
                    fingerprint: rms_domain::Fingerprint::from_sha256([certificate; 32]),
                    device_id: device,
                    name: format!("tablet {certificate}"),
                    state: if revoke {
                        rms_domain::TrustState::Revoked
                    } else {
                        rms_domain::TrustState::Trusted
                    },
                    how: if revoke { "revoked" } else { "approved" }.into(),
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

    pub(super) fn crash(&mut self, index: usize) -> Result<(), String> {
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
}
