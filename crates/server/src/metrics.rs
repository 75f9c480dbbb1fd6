//! `GET /metrics`: counters and histograms in the Prometheus text format.
//!
//! Requests are counted by operation and status code with a latency histogram per
//! operation; connections by state; slow-consumer closes here, notifications queued
//! by the hub. Every counter belongs to one server instance, so two servers in one
//! process (tests do this) count apart. The store appends its own figures (commit
//! batch sizes, commit/fsync latency, change-log size).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ripplekv_core::metrics::{Histogram, LATENCY_SECONDS};
use ripplekv_core::Store;

use crate::hub::Hub;

/// Operation labels, WebSocket and REST alike.
pub(crate) const OPS: [&str; 11] = [
    "get",
    "set",
    "patch",
    "delete",
    "range",
    "atomic",
    "jsonpatch",
    "subscribe",
    "unsubscribe",
    "token",
    "invalid",
];
/// Status codes counted; anything else is counted as 500.
const CODES: [u16; 10] = [200, 400, 401, 403, 404, 409, 413, 429, 500, 503];

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    requests: Vec<AtomicU64>,
    latency: Vec<Histogram>,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    slow_consumer_closes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..OPS.len() * CODES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: OPS
                .iter()
                .map(|_| Histogram::new(LATENCY_SECONDS))
                .collect(),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one request of `op` (one of [`OPS`]) answered with `code` after `seconds`.
    pub(crate) fn request(&self, op: &str, code: u16, seconds: f64) {
        let op = OPS
            .iter()
            .position(|known| *known == op)
            .unwrap_or(OPS.len() - 1);
        let code = CODES.iter().position(|known| *known == code).unwrap_or(8);
        self.requests[op * CODES.len() + code].fetch_add(1, Ordering::Relaxed);
        self.latency[op].observe(seconds);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed as a slow consumer; returns the count so far.
    pub(crate) fn slow_consumer_closed(&self) -> u64 {
        self.slow_consumer_closes.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn open_connections(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// The whole exposition.
    pub(crate) fn render(&self, store: &dyn Store, hub: &Hub) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "ripplekv_connections_open",
            "WebSocket connections open.",
            "gauge",
            self.open_connections().to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_connections_total",
            "WebSocket connections accepted.",
            "counter",
            self.connections_total.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_connections_refused_total",
            "WebSocket upgrades refused for the connection limit.",
            "counter",
            self.connections_refused.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_subscriptions",
            "Subscriptions held by the hub.",
            "gauge",
            hub.len().to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_notifications_queued_total",
            "Notifications queued to connections.",
            "counter",
            hub.notifications_queued().to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_slow_consumer_closes_total",
            "Connections closed as slow consumers.",
            "counter",
            self.slow_consumer_closes
                .load(Ordering::Relaxed)
                .to_string(),
        );
        gauge(
            &mut out,
            "ripplekv_revision",
            "The latest committed revision.",
            "gauge",
            store.revision().to_string(),
        );
        out.push_str("# HELP ripplekv_delivery_lag_seconds Time from a change's commit (its timestamp) to its fan-out on this node; for other nodes' commits, how far behind this node delivers.\n# TYPE ripplekv_delivery_lag_seconds histogram\n");
        hub.delivery_lag()
            .render(&mut out, "ripplekv_delivery_lag_seconds", "");
        out.push_str("# HELP ripplekv_requests_total Requests by operation and status code.\n# TYPE ripplekv_requests_total counter\n");
        for (o, op) in OPS.iter().enumerate() {
            for (c, code) in CODES.iter().enumerate() {
                let count = self.requests[o * CODES.len() + c].load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "ripplekv_requests_total{{op=\"{op}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# HELP ripplekv_request_seconds Request latency by operation.\n# TYPE ripplekv_request_seconds histogram\n");
        for (op, histogram) in OPS.iter().zip(&self.latency) {
            if histogram.count() > 0 {
                histogram.render(
                    &mut out,
                    "ripplekv_request_seconds",
                    &format!("op=\"{op}\""),
                );
            }
        }
        store.render_metrics(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_op_and_code() {
        let metrics = Metrics::default();
        metrics.request("get", 200, 0.0001);
        metrics.request("get", 404, 0.0002);
        metrics.request("weird", 777, 0.1);
        let store = ripplekv_storage::MemoryStore::new(ripplekv_core::Limits::default());
        let text = metrics.render(&store, &Hub::default());
        assert!(text.contains("ripplekv_requests_total{op=\"get\",code=\"200\"} 1"));
        assert!(text.contains("ripplekv_requests_total{op=\"get\",code=\"404\"} 1"));
        assert!(text.contains("ripplekv_requests_total{op=\"invalid\",code=\"500\"} 1"));
        assert!(text.contains("ripplekv_request_seconds_count{op=\"get\"} 2"));
    }
}
