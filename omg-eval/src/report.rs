//! A metric table: each metric has a value, or is unavailable with the reason (never a
//! made-up number). Serialisable with serde, printable as plain text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A metric's value, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MetricValue {
    /// The metric was computed.
    Value {
        /// The number.
        value: f64,
    },
    /// The metric could not be computed (a resource is missing, ...).
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl MetricValue {
    /// A computed value.
    pub fn value(value: f64) -> Self {
        MetricValue::Value { value }
    }

    /// An unavailable metric with its reason.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        MetricValue::Unavailable {
            reason: reason.into(),
        }
    }

    /// The value, if there is one.
    pub fn as_value(&self) -> Option<f64> {
        match self {
            MetricValue::Value { value } => Some(*value),
            MetricValue::Unavailable { .. } => None,
        }
    }
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Value { value } => write!(f, "{value:.4}"),
            MetricValue::Unavailable { reason } => write!(f, "unavailable: {reason}"),
        }
    }
}

/// One row of a [`MetricTable`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Metric name, e.g. `"cIoU"`.
    pub metric: String,
    /// Its value.
    pub value: MetricValue,
}

/// The metrics of one evaluation (a benchmark split).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricTable {
    /// What was evaluated, e.g. `"RefCOCO val"`.
    pub title: String,
    /// The metrics in display order.
    pub rows: Vec<MetricRow>,
}

impl MetricTable {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Appends a metric.
    pub fn push(&mut self, metric: impl Into<String>, value: MetricValue) {
        self.rows.push(MetricRow {
            metric: metric.into(),
            value,
        });
    }

    /// The value of the first row named `metric`.
    pub fn get(&self, metric: &str) -> Option<&MetricValue> {
        self.rows
            .iter()
            .find(|r| r.metric == metric)
            .map(|r| &r.value)
    }
}

impl fmt::Display for MetricTable {
    /// The title, then one `metric  value` line per row, names padded to one width.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let width = self
            .rows
            .iter()
            .map(|r| r.metric.chars().count())
            .max()
            .unwrap_or(0);
        for r in &self.rows {
            writeln!(f, "  {:<width$}  {}", r.metric, r.value)?;
        }
        Ok(())
    }
}
