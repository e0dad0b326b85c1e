//! Random identifiers and passwords.

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut buf = vec![0u8; len];
    // The OS random source failing is not something to recover from gracefully, but it
    // must not be silent either: fall back to time-seeded bytes and log loudly.
    if let Err(e) = getrandom::getrandom(&mut buf) {
        tracing::error!(error = %e, "OS random source failed; using a time-based fallback");
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    buf.iter()
        .map(|b| alphabet[(*b as usize) % alphabet.len()] as char)
        .collect()
}

/// Neon-style ids: `br-…`, `prj-…`, `op-…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_string(ALPHABET, 12))
}

/// A branch password: 24 characters of [A-Za-z0-9] (~142 bits), URL-safe.
pub fn new_password() -> String {
    random_string(PASSWORD_ALPHABET, 24)
}

/// An API key's secret: `pgf_` and 48 characters of [A-Za-z0-9] (~285 bits). The prefix
/// lets secret scanners (and people) recognise a leaked key.
pub fn new_api_key() -> String {
    format!("pgf_{}", random_string(PASSWORD_ALPHABET, 48))
}
