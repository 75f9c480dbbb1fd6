//! The API key a server uses when none is configured.
//!
//! On first start a random key is generated, written to `<data dir>/api-key` with
//! mode 0600, and printed once in the log so a newcomer can connect at once. Later
//! starts read it back and only say where it is kept, so keys do not pile up in logs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

/// File name of the generated key inside the data directory.
pub const KEY_FILE: &str = "api-key";

/// Returns the stored key, generating and storing one if there is none.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            tracing::info!(path = %path.display(), "using the generated API key kept in the data directory");
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = generate()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{key}")?;
    file.sync_all()?;
    tracing::info!(
        "generated API key {key} (kept in {}); connect with ws://HOST/ws?apiKey={key} or the x-api-key header",
        path.display()
    );
    Ok(key)
}

/// 24 random bytes as hex, behind a recognisable prefix.
fn generate() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("rk_{hex}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path()).unwrap();
        assert!(first.starts_with("rk_") && first.len() == 51, "{first}");
        let again = load_or_generate(dir.path()).unwrap();
        assert_eq!(first, again);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
