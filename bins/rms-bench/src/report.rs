//! One row of the summary: a scenario's value and its reference, measured round by round
//! (reference, rms, reference, rms, ...), with the median ratio and its spread.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// rms must reach this fraction of the reference (higher is better: throughput).
    RatioAtLeast(f64),
    /// rms's value must be at most this, in the row's unit (lower is better: time, memory).
    AtMost(f64),
    /// rms's value must be at most this multiple of the reference (lower is better: a cost
    /// against the same thing without it, e.g. latency with TLS against plaintext).
    RatioAtMost(f64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub name: String,
    pub unit: &'static str,
    /// rms's value in each round.
    pub values: Vec<f64>,
    /// The reference's value in the same rounds.
    pub references: Vec<f64>,
    pub target: Option<Target>,
    /// Server CPU seconds per 1000 events (rms, then the reference), medians of the rounds.
    pub cpu_s_per_1000: Option<f64>,
    pub reference_cpu_s_per_1000: Option<f64>,
    /// Anything else worth keeping (p50 beside a p99, counts, settings).
    pub extra: Value,
}

impl Row {
    pub fn new(id: &'static str, name: impl Into<String>, unit: &'static str) -> Row {
        Row {
            id,
            name: name.into(),
            unit,
            values: Vec::new(),
            references: Vec::new(),
            target: None,
            cpu_s_per_1000: None,
            reference_cpu_s_per_1000: None,
            extra: json!({}),
        }
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    pub fn round(&mut self, value: f64, reference: f64) {
        self.values.push(value);
        self.references.push(reference);
    }

    fn ratios(&self) -> Vec<f64> {
        self.values
            .iter()
            .zip(&self.references)
            .filter(|(_, r)| **r > 0.0)
            .map(|(v, r)| v / r)
            .collect()
    }

    pub fn value(&self) -> f64 {
        median(&self.values)
    }

    pub fn reference(&self) -> f64 {
        median(&self.references)
    }

    pub fn met(&self) -> Option<bool> {
        Some(match self.target? {
            Target::RatioAtLeast(min) => median(&self.ratios()) >= min,
            Target::AtMost(max) => self.value() <= max,
            Target::RatioAtMost(max) => median(&self.ratios()) <= max,
        })
    }

    pub fn to_json(&self) -> Value {
        let ratios = self.ratios();
        let target = match self.target {
            Some(Target::RatioAtLeast(min)) => json!(format!(">= {min} x reference")),
            Some(Target::AtMost(max)) => json!(format!("<= {max} {}", self.unit)),
            Some(Target::RatioAtMost(max)) => json!(format!("<= {max} x reference")),
            None => Value::Null,
        };
        json!({
            "id": self.id,
            "name": self.name,
            "value": round3(self.value()),
            "unit": self.unit,
            "reference": round3(self.reference()),
            "ratio": round3(median(&ratios)),
            "ratio_min": round3(ratios.iter().copied().fold(f64::INFINITY, f64::min)),
            "ratio_max": round3(ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            "rounds": self.values.len(),
            "target": target,
            "met": self.met(),
            "cpu_s_per_1000": self.cpu_s_per_1000.map(round3),
            "reference_cpu_s_per_1000": self.reference_cpu_s_per_1000.map(round3),
            "values": self.values.iter().copied().map(round3).collect::<Vec<_>>(),
            "references": self.references.iter().copied().map(round3).collect::<Vec<_>>(),
            "extra": self.extra,
        })
    }
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The `p`-th percentile (0..=100) of `samples` (sorted here), nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// The table printed at the end of a run.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:<4} {:<58} {:>12} {:>12} {:<10} {:>18} {:>14} {:>6}",
        "id", "scenario", "value", "reference", "unit", "ratio (min-max)", "cpu s/1000", "met"
    );
    for row in rows {
        let ratios = row.ratios();
        let spread = format!(
            "{:.3} ({:.2}-{:.2})",
            median(&ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );
        let cpu = match (row.cpu_s_per_1000, row.reference_cpu_s_per_1000) {
            (Some(a), Some(b)) => format!("{a:.3}/{b:.3}"),
            (Some(a), None) => format!("{a:.3}"),
            _ => String::new(),
        };
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<4} {:<58} {:>12.3} {:>12.3} {:<10} {:>18} {:>14} {:>6}",
            row.id,
            row.name,
            row.value(),
            row.reference(),
            row.unit,
            spread,
            cpu,
            met
        );
    }
}
