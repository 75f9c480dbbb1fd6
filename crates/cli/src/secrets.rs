//! Secrets a server generates when none are configured: the API key and the token
//! signing secret.
//!
//! Each is generated once, written to the data directory with mode 0600, and read
//! back on later starts. The API key is printed in the log when it is generated, so a
//! newcomer can connect at once; later starts only say where it is kept, so keys do not
//! pile up in logs. The token secret is never printed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

/// File name of the generated API key inside the data directory.
pub(crate) const API_KEY_FILE: &str = "api-key";
/// File name of the generated token secret inside the data directory.
pub(crate) const TOKEN_SECRET_FILE: &str = "token-secret";
/// When the current token-secret rotation began: a digest of the previous secret and
/// a time in milliseconds, so restarts do not extend its grace period.
pub(crate) const ROTATION_FILE: &str = "token-rotation";

/// When tokens of `previous` stop being accepted: `grace` after the first start that
/// named this previous secret (remembered in the data directory), not after this start.
pub(crate) fn rotation_deadline(
    data_dir: &Path,
    previous: &str,
    grace: std::time::Duration,
) -> anyhow::Result<u64> {
    use sha2::{Digest, Sha256};
    let path = data_dir.join(ROTATION_FILE);
    let digest: String = Sha256::digest(previous.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let remembered = read(&path)?.and_then(|text| {
        let (stored, started) = text.split_once(' ')?;
        (stored == digest).then(|| started.parse::<u64>().ok())?
    });
    let started = match remembered {
        Some(started) => started,
        None => {
            let now = ripplekv_core::now_ms();
            write_private(data_dir, &path, &format!("{digest} {now}"))?;
            now
        }
    };
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    Ok(started.saturating_add(grace_ms))
}

/// Returns the stored API key, generating and storing one if there is none.
pub(crate) fn api_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(API_KEY_FILE);
    if let Some(key) = read(&path)? {
        tracing::info!(path = %path.display(), "using the generated API key kept in the data directory");
        return Ok(key);
    }
    let key = format!("rk_{}", random_hex(24)?);
    write_private(data_dir, &path, &key)?;
    tracing::info!(
        "generated API key {key} (kept in {}); connect with ws://HOST/ws?apiKey={key} or the x-api-key header",
        path.display()
    );
    Ok(key)
}

/// Returns the stored token secret, generating and storing one if there is none.
pub(crate) fn token_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_SECRET_FILE);
    if let Some(secret) = read(&path)? {
        return Ok(secret);
    }
    let secret = random_hex(32)?;
    write_private(data_dir, &path, &secret)?;
    tracing::info!(path = %path.display(), "generated the token signing secret");
    Ok(secret)
}

fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(data_dir: &Path, path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    Ok(())
}

/// `bytes` random bytes as lowercase hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = api_key(dir.path()).unwrap();
        assert!(first.starts_with("rk_") && first.len() == 51, "{first}");
        assert_eq!(first, api_key(dir.path()).unwrap());
        let secret = token_secret(dir.path()).unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(secret, token_secret(dir.path()).unwrap());
        for file in [API_KEY_FILE, TOKEN_SECRET_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn a_rotation_deadline_does_not_move_on_restart_but_a_new_rotation_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let grace = std::time::Duration::from_secs(60);
        let before = ripplekv_core::now_ms();
        let first = rotation_deadline(dir.path(), "old-secret", grace).unwrap();
        assert!(first >= before + 60_000);
        // A restart with the same previous secret keeps the same deadline...
        assert_eq!(
            rotation_deadline(dir.path(), "old-secret", grace).unwrap(),
            first
        );
        // ...even with a longer grace, which counts from the same start.
        let longer = rotation_deadline(dir.path(), "old-secret", grace * 2).unwrap();
        assert_eq!(longer, first + 60_000);
        // The file holds a digest, never the secret.
        let stored = std::fs::read_to_string(dir.path().join(ROTATION_FILE)).unwrap();
        assert!(!stored.contains("old-secret"));
        // Rotating out another secret starts a new period.
        std::fs::write(dir.path().join(ROTATION_FILE), "deadbeef 1\n").unwrap();
        assert!(rotation_deadline(dir.path(), "old-secret", grace).unwrap() >= before + 60_000);
    }
}
