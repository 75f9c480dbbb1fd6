//! Cost of matching one written key against many subscriptions, through the hub's
//! index, against the baseline of checking every subscription's pattern in turn.
//!
//! Run: `cargo bench -p ripplekv-server --bench hub`
//!
//! Subscriptions are spread over 100 connections. Mixes: exact keys and `prefix*`
//! patterns only (what apps mostly use); then 1% and 10% regexes that start with
//! literal text (`^user:7:[a-z]+$`), which the index files under that text; then 1%
//! regexes without a literal prefix (`^(user|team):7:…$`), which must be run for every
//! key. Keys written are drawn so that about half match something.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripplekv_core::Pattern;
use ripplekv_server::hub::{Access, Hub, Subscriber};
use ripplekv_server::Outbox;

const CONNECTIONS: usize = 100;
const KEYS: usize = 1000;

/// The share of general regexes in a mix, and whether they start with literal text.
#[derive(Clone, Copy)]
struct Mix {
    label: &'static str,
    general_every: Option<usize>,
    literal_prefix: bool,
}

const MIXES: [Mix; 4] = [
    Mix {
        label: "exact + prefix",
        general_every: None,
        literal_prefix: true,
    },
    Mix {
        label: "1% regex",
        general_every: Some(100),
        literal_prefix: true,
    },
    Mix {
        label: "10% regex",
        general_every: Some(10),
        literal_prefix: true,
    },
    Mix {
        label: "1% regex, no literal prefix",
        general_every: Some(100),
        literal_prefix: false,
    },
];

/// The n-th subscription of a mix.
fn pattern(n: usize, mix: Mix) -> String {
    match mix.general_every {
        Some(every) if n.is_multiple_of(every) && mix.literal_prefix => {
            format!("^user:{n}:[a-z]+:(draft|final)$")
        }
        Some(every) if n.is_multiple_of(every) => format!("^(user|team):{n}:[a-z]+:(draft|final)$"),
        _ if n.is_multiple_of(2) => format!("user:{n}:profile"),
        _ => format!("user:{n}:items:*"),
    }
}

/// A key that matches subscription `n` half the time.
fn key(n: usize) -> String {
    match n % 4 {
        0 => format!("user:{n}:profile"),
        1 => format!("user:{n}:items:42"),
        2 => format!("user:{n}:notes:final"),
        _ => format!("other:{n}"),
    }
}

/// Runs `work` over all keys repeatedly for about `budget`; returns ns per key.
fn time_per_key(keys: &[String], budget: Duration, mut work: impl FnMut(&str) -> usize) -> f64 {
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < budget {
        for key in keys {
            black_box(work(key));
        }
        rounds += 1;
    }
    started.elapsed().as_nanos() as f64 / (rounds as f64 * keys.len() as f64)
}

fn main() {
    println!("| subscriptions | mix | hub (ns/key) | linear scan (ns/key) | speed-up |");
    println!("|---:|---|---:|---:|---:|");
    for total in [10_000usize, 100_000] {
        for mix in MIXES {
            let hub = Hub::default();
            let subscribers: Vec<Arc<Subscriber>> = (0..CONNECTIONS)
                .map(|_| {
                    let (outbox, receiver) =
                        Outbox::new(16, 1 << 20, std::time::Duration::from_secs(30));
                    std::mem::forget(receiver); // never read: only matching is measured
                    Arc::new(Subscriber::new(outbox, Access::All, 16))
                })
                .collect();
            let patterns: Vec<Pattern> = (0..total)
                .map(|n| Pattern::compile(&pattern(n, mix)).expect("valid pattern"))
                .collect();
            for (n, compiled) in patterns.iter().enumerate() {
                hub.subscribe(&subscribers[n % CONNECTIONS], compiled.clone(), false);
            }
            let keys: Vec<String> = (0..KEYS).map(|i| key(i * (total / KEYS))).collect();
            let budget = Duration::from_millis(if total > 10_000 { 1500 } else { 700 });
            let indexed = time_per_key(&keys, budget, |key| hub.matching(key).len());
            let linear = time_per_key(&keys, budget, |key| {
                patterns.iter().filter(|p| p.matches(key)).count()
            });
            println!(
                "| {total} | {} | {indexed:.0} | {linear:.0} | {:.1}x |",
                mix.label,
                linear / indexed
            );
        }
    }
}
