//! Prints every change to keys matching the patterns given on the command line, and
//! keeps doing so across disconnects and server restarts.
//!
//! `RIPPLEKV_API_KEY=… cargo run -p ripplekv-client --example watch -- 'todos-*'`

use futures_util::StreamExt;
use ripplekv_client::{Auth, Client, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("RIPPLEKV_API_KEY")?;
    let url = std::env::var("RIPPLEKV_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let patterns: Vec<String> = std::env::args().skip(1).collect();
    let client = Client::connect(&url, Auth::ApiKey(key)).await?;
    let mut changes = client.subscribe(patterns).await?;
    while let Some(event) = changes.next().await {
        match event {
            Event::Change(change) => println!(
                "{} {} = {:?} (revision {})",
                change.op.as_deref().unwrap_or("change"),
                change.key,
                change.value,
                change.revision
            ),
            Event::Resync { revision } => {
                println!("missed too much; re-read everything (now at revision {revision})")
            }
        }
    }
    Ok(())
}
