//! What a benchmark run measured, as a table or as JSON.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The outcome of one run.
#[derive(Debug)]
pub(super) struct Report {
    pub mode: String,
    /// Operations completed (requests, or notifications delivered).
    pub operations: u64,
    pub seconds: f64,
    /// Latency in microseconds, if measured.
    pub latency: Option<Histogram<u64>>,
    /// Anything else worth printing.
    pub extra: Value,
    /// The load generator's own CPU use over the run, in cores (filled in by `main`).
    pub client_cpu: Option<f64>,
}

/// CPU time this process has used, in seconds (user plus system, from /proc, whose
/// clock ticks are 1/100 s on Linux).
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// A histogram for latencies from 1 µs to 60 s with 3 significant digits.
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

impl Report {
    pub(super) fn throughput(&self) -> f64 {
        self.operations as f64 / self.seconds.max(f64::EPSILON)
    }

    fn to_json(&self) -> Value {
        let latency = self.latency.as_ref().map(|h| {
            json!({
                "p50_us": h.value_at_quantile(0.50),
                "p90_us": h.value_at_quantile(0.90),
                "p99_us": h.value_at_quantile(0.99),
                "p999_us": h.value_at_quantile(0.999),
                "max_us": h.max(),
                "mean_us": h.mean(),
            })
        });
        json!({
            "mode": self.mode,
            "operations": self.operations,
            "seconds": self.seconds,
            "per_second": self.throughput(),
            "latency": latency,
            "extra": self.extra,
            "client_cpu": self.client_cpu,
        })
    }

    pub(super) fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
            return;
        }
        println!("mode:        {}", self.mode);
        println!("operations:  {} in {:.2} s", self.operations, self.seconds);
        println!("throughput:  {:.0}/s", self.throughput());
        if let Some(h) = &self.latency {
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "latency ms:  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                ms(h.value_at_quantile(0.50)),
                ms(h.value_at_quantile(0.90)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max())
            );
        }
        if let Some(cores) = self.client_cpu {
            println!(
                "client cpu:  {:.0}% of one core{}",
                cores * 100.0,
                if cores >= 0.9 {
                    " (the load generator may be the limit)"
                } else {
                    ""
                }
            );
        }
        if self.extra.as_object().is_some_and(|o| !o.is_empty()) {
            println!("details:     {}", self.extra);
        }
    }
}
