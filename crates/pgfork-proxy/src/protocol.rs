//! The front matter of the Postgres wire protocol (before authentication).

use std::collections::BTreeMap;

pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;
pub const PROTOCOL_3: u32 = 196_608;
/// Postgres itself refuses startup packets over 10,000 bytes.
pub const MAX_STARTUP_LEN: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    /// pid and secret key of the backend to cancel.
    Cancel {
        pid: u32,
        key: u32,
    },
    /// Protocol 3.x with its parameters (`user`, `database`, `options`, ...).
    Startup {
        minor: u16,
        params: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error("invalid startup packet length {0}")]
    BadLength(usize),
    #[error("unsupported frontend protocol {major}.{minor}: pgfork speaks 3.0")]
    Protocol { major: u16, minor: u16 },
    #[error("invalid startup packet: {0}")]
    Malformed(&'static str),
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
}

/// Parses a startup-phase packet *body* (after the 4-byte length, which the caller
/// checked to be 8..=MAX_STARTUP_LEN). Never panics, whatever the bytes.
pub fn parse_startup(body: &[u8]) -> Result<Startup, StartupError> {
    if body.len() < 4 {
        return Err(StartupError::BadLength(body.len() + 4));
    }
    let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    match code {
        SSL_REQUEST if body.len() == 4 => Ok(Startup::Ssl),
        GSSENC_REQUEST if body.len() == 4 => Ok(Startup::GssEnc),
        CANCEL_REQUEST if body.len() == 12 => Ok(Startup::Cancel {
            pid: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
            key: u32::from_be_bytes([body[8], body[9], body[10], body[11]]),
        }),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            Err(StartupError::BadLength(body.len() + 4))
        }
        _ => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            if major != 3 {
                return Err(StartupError::Protocol { major, minor });
            }
            let mut params = BTreeMap::new();
            let mut rest = &body[4..];
            loop {
                let Some(end) = rest.iter().position(|b| *b == 0) else {
                    return Err(StartupError::Malformed("missing terminator"));
                };
                if end == 0 {
                    if rest.len() != 1 {
                        return Err(StartupError::Malformed("data after the terminator"));
                    }
                    break;
                }
                let key = std::str::from_utf8(&rest[..end])
                    .map_err(|_| StartupError::Malformed("parameter name is not UTF-8"))?;
                rest = &rest[end + 1..];
                let Some(vend) = rest.iter().position(|b| *b == 0) else {
                    return Err(StartupError::Malformed("parameter without value"));
                };
                let value = std::str::from_utf8(&rest[..vend])
                    .map_err(|_| StartupError::Malformed("parameter value is not UTF-8"))?;
                params.insert(key.to_string(), value.to_string());
                rest = &rest[vend + 1..];
            }
            if params.get("user").is_none_or(|u| u.is_empty()) {
                return Err(StartupError::NoUser);
            }
            Ok(Startup::Startup { minor, params })
        }
    }
}

/// Serialises a protocol-3.0 startup message for the backend.
pub fn startup_message(params: &BTreeMap<String, String>) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A backend message: type byte, length, payload.
pub fn message(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An `ErrorResponse` with severity FATAL, the SQLSTATE and a message.
pub fn error_response(code: &str, text: &str) -> Vec<u8> {
    let mut p = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', text)] {
        p.push(field);
        p.extend_from_slice(value.as_bytes());
        p.push(0);
    }
    p.push(0);
    message(b'E', &p)
}

/// An authentication request (`R`) with its code and data.
pub fn auth(code: u32, data: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(data);
    message(b'R', &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_body(params: &[(&str, &str)]) -> Vec<u8> {
        let map: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        startup_message(&map)[4..].to_vec()
    }

    #[test]
    fn parses_the_four_kinds() {
        assert_eq!(parse_startup(&SSL_REQUEST.to_be_bytes()), Ok(Startup::Ssl));
        assert_eq!(
            parse_startup(&GSSENC_REQUEST.to_be_bytes()),
            Ok(Startup::GssEnc)
        );
        let mut cancel = CANCEL_REQUEST.to_be_bytes().to_vec();
        cancel.extend(7u32.to_be_bytes());
        cancel.extend(9u32.to_be_bytes());
        assert_eq!(
            parse_startup(&cancel),
            Ok(Startup::Cancel { pid: 7, key: 9 })
        );
        match parse_startup(&startup_body(&[("user", "u"), ("database", "d")])) {
            Ok(Startup::Startup { minor: 0, params }) => {
                assert_eq!(params.get("user").map(String::as_str), Some("u"));
                assert_eq!(params.get("database").map(String::as_str), Some("d"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            parse_startup(&(2u32 << 16).to_be_bytes()),
            Err(StartupError::Protocol { major: 2, .. })
        ));
        assert_eq!(
            parse_startup(&startup_body(&[("database", "d")])),
            Err(StartupError::NoUser)
        );
        let mut unterminated = PROTOCOL_3.to_be_bytes().to_vec();
        unterminated.extend(b"user\0u");
        assert!(matches!(
            parse_startup(&unterminated),
            Err(StartupError::Malformed(_))
        ));
        assert!(parse_startup(&[1, 2]).is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A cheap deterministic fuzz: every prefix and byte flip of a valid packet.
        let valid = startup_body(&[
            ("user", "postgres"),
            ("database", "app"),
            ("application_name", "x"),
        ]);
        for len in 0..valid.len() {
            let _ = parse_startup(&valid[..len]);
        }
        let mut seed: u32 = 12345;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let mut v = valid.clone();
            let i = (seed as usize) % v.len();
            v[i] = (seed >> 8) as u8;
            let _ = parse_startup(&v);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a client sends, parsing returns; it never panics or loops.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_startup(&body);
        }

        /// Valid parameters survive the round trip through our own encoder.
        #[test]
        fn startup_messages_round_trip(params in proptest::collection::btree_map("[a-z_]{1,12}", "[ -~&&[^\\x00]]{0,24}", 1..6), user in "[a-z]{1,10}") {
            let mut params = params;
            params.insert("user".to_string(), user);
            let packet = startup_message(&params);
            prop_assert_eq!(u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]) as usize, packet.len());
            match parse_startup(&packet[4..]) {
                Ok(Startup::Startup { minor: 0, params: parsed }) => prop_assert_eq!(parsed, params),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
