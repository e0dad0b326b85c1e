//! The server side of SCRAM-SHA-256 (RFC 5802/7677), as Postgres speaks it.
//!
//! The proxy knows each branch's password, so it derives the verifier once per branch
//! (the 4096 PBKDF2 rounds are the expensive part) and every connection then costs a
//! few HMACs.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

pub const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&m.finalize().into_bytes());
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(data));
    out
}

fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// What the server keeps for a password (like `pg_authid.rolpassword`).
#[derive(Clone)]
pub struct ScramVerifier {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramVerifier(..)")
    }
}

/// One authentication exchange in progress.
pub struct Exchange<'v> {
    verifier: &'v ScramVerifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// What `c=` of the client-final message must decode to: the GS2 header echoed,
    /// plus the channel-binding data when bound.
    expected_c: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding failed: {0}")]
    ChannelBinding(&'static str),
    #[error("password authentication failed")]
    BadProof,
}

/// What the server offered and what the connection is, for the channel-binding rules.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The client chose SCRAM-SHA-256-PLUS.
    pub plus: bool,
    /// The `tls-server-end-point` data when the connection is TLS (PLUS offered).
    pub tls_end_point: Option<&'a [u8]>,
}

impl ScramVerifier {
    pub fn new(password: &str, salt: &[u8]) -> ScramVerifier {
        let salted = pbkdf2(password.as_bytes(), salt, ITERATIONS);
        ScramVerifier {
            salt: salt.to_vec(),
            iterations: ITERATIONS,
            stored_key: sha256(&hmac(&salted, b"Client Key")),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// The verifier Postgres stores in `pg_authid.rolpassword` for a SCRAM password:
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64). `None` for
    /// anything else (an md5 hash, no password).
    pub fn from_postgres_secret(secret: &str) -> Option<ScramVerifier> {
        let rest = secret.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let key = |k: &str| -> Option<[u8; 32]> {
            let v = b64().decode(k).ok()?;
            v.try_into().ok()
        };
        Some(ScramVerifier {
            salt: b64().decode(salt).ok()?,
            iterations: iter.parse().ok()?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// A verifier no password matches, for roles that do not exist or cannot log in:
    /// the exchange runs to its end and fails like a wrong password, so a client
    /// cannot tell which roles exist.
    pub fn unmatchable(salt: &[u8]) -> ScramVerifier {
        ScramVerifier {
            salt: salt.to_vec(),
            iterations: ITERATIONS,
            stored_key: [0u8; 32],
            server_key: [0u8; 32],
        }
    }

    /// Starts an exchange from the client-first message; returns it and the
    /// server-first message to send.
    pub fn begin(
        &self,
        client_first: &str,
        server_nonce: &str,
        binding: Binding<'_>,
    ) -> Result<(Exchange<'_>, String), ScramError> {
        let (gs2, bare) = split_gs2(client_first)?;
        let mut parts = gs2.split(',');
        let flag = parts.next().unwrap_or("");
        if parts.next().is_some_and(|authzid| !authzid.is_empty()) {
            return Err(ScramError::Malformed(
                "an authorization identity (a=) is not supported",
            ));
        }
        let mut expected_c = gs2.as_bytes().to_vec();
        match (flag, binding.plus, binding.tls_end_point) {
            ("p=tls-server-end-point", true, Some(end_point)) => {
                expected_c.extend_from_slice(end_point)
            }
            (f, _, _) if f.starts_with("p=") && !binding.plus => {
                return Err(ScramError::Malformed(
                    "channel binding requested with SCRAM-SHA-256; use SCRAM-SHA-256-PLUS",
                ))
            }
            (f, true, _) if f.starts_with("p=") => {
                return Err(ScramError::ChannelBinding(
                    "only tls-server-end-point over TLS is supported",
                ))
            }
            (_, true, _) => {
                return Err(ScramError::ChannelBinding(
                    "SCRAM-SHA-256-PLUS without a channel binding",
                ))
            }
            // "y": the client could bind but thinks we cannot. Over TLS we offered
            // PLUS, so someone in between removed it: refuse (RFC 5802 §6).
            ("y", false, Some(_)) => {
                return Err(ScramError::ChannelBinding(
                    "the server offered SCRAM-SHA-256-PLUS; a downgrade is refused",
                ))
            }
            ("n", false, _) | ("y", false, None) => {}
            _ => return Err(ScramError::Malformed("bad GS2 header")),
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("no client nonce"))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64().encode(&self.salt),
            self.iterations
        );
        Ok((
            Exchange {
                verifier: self,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                expected_c,
            },
            server_first,
        ))
    }
}

fn split_gs2(msg: &str) -> Result<(&str, &str), ScramError> {
    // gs2-header = cbind-flag "," [authzid] ","
    let first = msg
        .find(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let second = msg[first + 1..]
        .find(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?
        + first
        + 1;
    Ok((&msg[..=second], &msg[second + 1..]))
}

impl Exchange<'_> {
    /// Verifies the client-final message; returns the server-final message.
    pub fn finish(&self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let channel = b64()
            .decode(channel.ok_or(ScramError::Malformed("no channel binding attribute"))?)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if channel != self.expected_c {
            return Err(ScramError::ChannelBinding(
                "the client's channel binding does not match this connection",
            ));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let proof = b64()
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(ScramError::BadProof);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        // Constant-time comparison of the derived stored key.
        let derived = sha256(&client_key);
        let diff = derived
            .iter()
            .zip(self.verifier.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64().encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client computing its proof the textbook way, to check the server against.
    fn client_final(
        password: &str,
        salt: &[u8],
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> String {
        client_final_with(
            password,
            salt,
            client_first_bare,
            server_first,
            nonce,
            b"n,,",
        )
    }

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, first 32 bytes.
        let out = pbkdf2(b"passwd", b"salt", 1);
        assert_eq!(out[..8], [0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f]);
    }

    #[test]
    fn a_right_password_passes_and_a_wrong_one_fails() {
        let v = ScramVerifier::new("s3cret", b"0123456789abcdef");
        let plain = Binding {
            plus: false,
            tls_end_point: None,
        };
        let (ex, server_first) = v
            .begin("n,,n=,r=clientnonce", "servernonce", plain)
            .expect("begin");
        let nonce = "clientnonceservernonce";
        let good = client_final(
            "s3cret",
            b"0123456789abcdef",
            "n=,r=clientnonce",
            &server_first,
            nonce,
        );
        assert!(ex.finish(&good).expect("verified").starts_with("v="));
        let bad = client_final(
            "wrong",
            b"0123456789abcdef",
            "n=,r=clientnonce",
            &server_first,
            nonce,
        );
        assert_eq!(ex.finish(&bad), Err(ScramError::BadProof));
        assert!(v
            .begin("p=tls-server-end-point,,n=,r=x", "y", plain)
            .is_err());
        assert!(ex.finish("garbage").is_err());
        assert!(
            v.begin("n,a=admin,n=,r=x", "y", plain).is_err(),
            "an authzid is refused"
        );
    }

    /// client-final with `c=` the base64 of `cbind` (the GS2 header, plus the
    /// channel-binding data when bound).
    fn client_final_with(
        password: &str,
        salt: &[u8],
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
        cbind: &[u8],
    ) -> String {
        let salted = pbkdf2(password.as_bytes(), salt, ITERATIONS);
        let client_key = hmac(&salted, b"Client Key");
        let stored = sha256(&client_key);
        let without_proof = format!("c={},r={nonce}", b64().encode(cbind));
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(sig.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", b64().encode(proof))
    }

    #[test]
    fn plus_binds_to_the_certificate_and_downgrades_are_refused() {
        let salt = b"0123456789abcdef";
        let v = ScramVerifier::new("pw", salt);
        let ours = [7u8; 32];
        let tls = Binding {
            plus: true,
            tls_end_point: Some(&ours),
        };
        let first = "p=tls-server-end-point,,n=,r=cn";
        let (ex, sf) = v.begin(first, "sn", tls).expect("begin");
        let mut cb = b"p=tls-server-end-point,,".to_vec();
        cb.extend_from_slice(&ours);
        let good = client_final_with("pw", salt, "n=,r=cn", &sf, "cnsn", &cb);
        assert!(ex.finish(&good).is_ok(), "bound to our certificate");
        // An impostor in the middle has another certificate: the client binds to it.
        let (ex, sf) = v.begin(first, "sn", tls).expect("begin");
        let mut theirs = b"p=tls-server-end-point,,".to_vec();
        theirs.extend_from_slice(&[9u8; 32]);
        let relayed = client_final_with("pw", salt, "n=,r=cn", &sf, "cnsn", &theirs);
        assert!(matches!(
            ex.finish(&relayed),
            Err(ScramError::ChannelBinding(_))
        ));
        // Over TLS without PLUS: "y" means someone removed PLUS from our offer.
        let over_tls = Binding {
            plus: false,
            tls_end_point: Some(&ours),
        };
        assert!(v.begin("y,,n=,r=cn", "sn", over_tls).is_err());
        // "n" without TLS is fine, and c= must echo exactly "n,,".
        let (ex, sf) = v.begin("n,,n=,r=cn", "sn", over_tls).expect("n over tls");
        let lying = client_final_with("pw", salt, "n=,r=cn", &sf, "cnsn", b"y,,");
        assert!(ex.finish(&lying).is_err(), "c= must echo the GS2 header");
    }

    #[test]
    fn postgres_secrets_verify_like_postgres() {
        // What Postgres stores for a password, computed the same way.
        let v = ScramVerifier::new("app-secret", b"0123456789abcdef");
        let secret = format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            ITERATIONS,
            b64().encode(b"0123456789abcdef"),
            b64().encode(v.stored_key),
            b64().encode(v.server_key)
        );
        let parsed = ScramVerifier::from_postgres_secret(&secret).expect("parsed");
        assert_eq!(parsed.stored_key, v.stored_key);
        assert_eq!(parsed.iterations, ITERATIONS);
        assert!(ScramVerifier::from_postgres_secret("md5abcdef").is_none());
        let plain = Binding {
            plus: false,
            tls_end_point: None,
        };
        let (ex, sf) = parsed.begin("n,,n=,r=c", "s", plain).expect("begin");
        let good = client_final("app-secret", b"0123456789abcdef", "n=,r=c", &sf, "cs");
        assert!(ex.finish(&good).is_ok());
        let u = ScramVerifier::unmatchable(b"0123456789abcdef");
        let (ex, sf) = u.begin("n,,n=,r=c", "s", plain).expect("begin");
        let any = client_final("", b"0123456789abcdef", "n=,r=c", &sf, "cs");
        assert_eq!(ex.finish(&any), Err(ScramError::BadProof));
    }
}
