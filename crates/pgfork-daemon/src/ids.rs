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

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "calm", "crisp", "dark", "dry", "eager", "fancy", "gentle", "green",
    "holy", "icy", "jolly", "late", "lively", "lucky", "misty", "noisy", "odd", "plain", "proud",
    "quiet", "rapid", "royal", "shy", "silent", "snowy", "solitary", "steep", "sweet", "tiny",
    "twilight", "wild", "winter", "young",
];
const NOUNS: &[&str] = &[
    "bar",
    "base",
    "bird",
    "block",
    "bonus",
    "brook",
    "butterfly",
    "cake",
    "cell",
    "cherry",
    "cloud",
    "credit",
    "darkness",
    "dawn",
    "dew",
    "dream",
    "dust",
    "feather",
    "field",
    "fire",
    "flower",
    "fog",
    "forest",
    "frog",
    "frost",
    "glade",
    "grass",
    "haze",
    "hill",
    "lake",
    "leaf",
    "meadow",
    "moon",
    "morning",
    "mountain",
    "night",
    "paper",
    "pine",
    "pond",
    "rain",
    "resonance",
    "river",
    "sea",
    "shadow",
    "shape",
    "silence",
    "sky",
    "smoke",
    "snow",
    "sound",
    "star",
    "sun",
    "sunset",
    "surf",
    "thunder",
    "tree",
    "violet",
    "voice",
    "water",
    "wave",
    "wind",
    "wood",
];

fn pick<'a>(words: &[&'a str]) -> &'a str {
    let mut b = [0u8; 2];
    if getrandom::getrandom(&mut b).is_err() {
        return words[0];
    }
    words[u16::from_le_bytes(b) as usize % words.len()]
}

/// Neon-style ids: `br-quiet-river-a1b2c3d4`, `prj-…`, `op-…`. Neon's clients tell an
/// id from a name by this shape (three dash-separated words after `br-`).
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        pick(ADJECTIVES),
        pick(NOUNS),
        random_string(ALPHABET, 8)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_neons() {
        let id = new_id("br");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!(parts[0], "br");
        assert!(parts[1..].iter().all(|p| !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())));
        assert_ne!(new_id("br"), new_id("br"));
    }
}
