//! TLS for the front door: a local CA and a server certificate, made once per install.
//!
//! `sslmode=require` works out of the box. For `verify-full`, point clients at the CA
//! (`sslrootcert=$PGFORK_HOME/tls/ca.crt`); the server certificate names `localhost`
//! and `127.0.0.1` (plus any names in `PGFORK_TLS_NAMES` for a team server).

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not create the TLS certificate: {0}")]
    Generate(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the TLS files in {0} are unusable ({1}): delete the directory and pgfork makes new ones"
    )]
    Config(PathBuf, String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(data).map_err(io(path))
}

fn gen(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// The CA's parameters: the same every time, so a CA certificate re-made from the same
/// key signs leaves that verify against the `ca.crt` clients already have.
fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgfork local CA");
    Ok(ca_params)
}

/// The names every server certificate carries, plus `extra`.
fn server_names(extra: &[String]) -> Vec<String> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in extra {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    sans
}

/// Signs a server certificate for `names` with the CA key, and writes it.
fn issue_leaf(
    dir: &Path,
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
    names: &[String],
) -> Result<(), TlsError> {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let sans = server_names(names);
    let mut leaf_params = CertificateParams::new(sans.clone()).map_err(gen)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "pgfork");
    let leaf_key = KeyPair::generate().map_err(gen)?;
    let leaf = leaf_params.signed_by(&leaf_key, ca, ca_key).map_err(gen)?;
    std::fs::write(dir.join("server.crt"), leaf.pem()).map_err(io(dir))?;
    write_private(&dir.join("server.key.der"), &leaf_key.serialize_der())?;
    std::fs::write(dir.join("server.crt.der"), leaf.der()).map_err(io(dir))?;
    std::fs::write(dir.join("server.names"), sans.join("\n")).map_err(io(dir))?;
    Ok(())
}

/// Makes the CA and server certificate in `dir` unless they exist.
fn create(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    use rcgen::KeyPair;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_key = KeyPair::generate().map_err(gen)?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(gen)?;
    write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    std::fs::write(dir.join("ca.crt"), ca.pem()).map_err(io(dir))?;
    issue_leaf(dir, &ca, &ca_key, names)?;
    // Written last: its presence means the set is complete.
    std::fs::write(dir.join("ca.crt.der"), ca.der()).map_err(io(dir))?;
    // Clients need the CA (verify-full) whoever runs the daemon; keys stay private.
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [
        ("", 0o711),
        ("ca.crt", 0o644),
        ("server.crt", 0o644),
        ("ca.crt.der", 0o644),
        ("server.crt.der", 0o644),
    ] {
        let p = if name.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(name)
        };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io(&p))?;
    }
    Ok(())
}

/// Re-issues the server certificate when it lacks a name now asked for (a team server
/// given `--public-host` after its first start), with the same CA: clients keep
/// trusting the `ca.crt` they have.
fn ensure_names(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let have: Vec<String> = std::fs::read_to_string(dir.join("server.names"))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    if server_names(names).iter().all(|n| have.contains(n)) {
        return Ok(());
    }
    let pem = std::fs::read_to_string(dir.join("ca.key")).map_err(io(dir))?;
    let ca_key = rcgen::KeyPair::from_pem(&pem).map_err(gen)?;
    let ca = ca_params()?.self_signed(&ca_key).map_err(gen)?;
    let mut all = have;
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    issue_leaf(dir, &ca, &ca_key, &all)?;
    tracing::info!(names = ?all, "re-issued the TLS server certificate for new names");
    Ok(())
}

/// What the front door needs for TLS: the rustls configuration, and the
/// `tls-server-end-point` channel-binding data of its certificate (RFC 5929: the hash
/// of the DER certificate with the hash of its signature, SHA-256 for ours), which
/// SCRAM-SHA-256-PLUS binds every authentication to.
#[derive(Clone)]
pub struct TlsServer {
    pub config: Arc<rustls::ServerConfig>,
    pub end_point: [u8; 32],
}

/// The server configuration, creating the certificates on first use.
pub fn server_config(dir: &Path, names: &[String]) -> Result<TlsServer, TlsError> {
    if !dir.join("ca.crt.der").exists() {
        create(dir, names)?;
    } else {
        ensure_names(dir, names)?;
    }
    let cert = std::fs::read(dir.join("server.crt.der")).map_err(io(dir))?;
    let cert_for_hash = cert.clone();
    let key = std::fs::read(dir.join("server.key.der")).map_err(io(dir))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(dir.to_path_buf(), e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| TlsError::Config(dir.to_path_buf(), e.to_string()))?;
    use sha2::Digest;
    let mut end_point = [0u8; 32];
    end_point.copy_from_slice(&sha2::Sha256::digest(&cert_for_hash));
    Ok(TlsServer {
        config: Arc::new(config),
        end_point,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_made_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("pgfork-tls-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        server_config(&dir, &[]).expect("first");
        let ca = std::fs::read(dir.join("ca.crt")).expect("ca");
        server_config(&dir, &[]).expect("second");
        assert_eq!(
            ca,
            std::fs::read(dir.join("ca.crt")).expect("ca"),
            "not regenerated"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("server.key.der"))
            .expect("key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // A new name re-issues the server certificate under the same CA.
        let before = std::fs::read(dir.join("server.crt.der")).expect("leaf");
        server_config(&dir, &["db.example.com".to_string()]).expect("third");
        assert_eq!(
            ca,
            std::fs::read(dir.join("ca.crt")).expect("ca"),
            "same CA"
        );
        assert_ne!(
            before,
            std::fs::read(dir.join("server.crt.der")).expect("leaf")
        );
        let verified = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(dir.join("ca.crt"))
            .arg(dir.join("server.crt"))
            .output();
        if let Ok(out) = verified {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let names = std::fs::read_to_string(dir.join("server.names")).expect("names");
        assert!(
            names.contains("db.example.com") && names.contains("localhost"),
            "{names}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
