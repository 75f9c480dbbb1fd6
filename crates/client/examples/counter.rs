//! Counts a visit, reads a record, and updates it only if nobody else changed it.
//!
//! `RIPPLEKV_API_KEY=… cargo run -p ripplekv-client --example counter`

use ripplekv_client::{Auth, Client, WriteOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("RIPPLEKV_API_KEY")?;
    let url = std::env::var("RIPPLEKV_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let client = Client::connect(&url, Auth::ApiKey(key)).await?;

    let visits = client.atomic("visits", 1).await?;
    println!("visit number {visits}");

    client.set("profile", r#"{"name":"Ada"}"#).await?;
    let profile = client.get("profile").await?;
    // Optimistic concurrency: fails with a 409 if someone wrote in between.
    let options = WriteOptions {
        if_revision: Some(profile.revision),
        ttl: None,
    };
    client
        .set_with("profile", r#"{"name":"Ada Lovelace"}"#, options)
        .await?;
    println!("profile updated from revision {}", profile.revision);
    Ok(())
}
