//! `tidaldb cert`: a test certificate authority and certificates signed by it, for trying
//! mutual TLS on one machine. Production clusters should use their own PKI; nothing here
//! protects the CA's key beyond file permissions.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// What `tidaldb cert` writes: `ca.pem` and, per name, `{name}.pem` and `{name}.key`.
#[derive(Clone, Debug)]
pub struct CertRequest {
    pub out: PathBuf,
    /// One certificate per name: node names and client names alike. Each can serve and
    /// dial, so the same files work for a node or a client.
    pub names: Vec<String>,
    /// Subject alternative names every certificate carries: the hosts clients and peers
    /// dial (DNS names or IP addresses).
    pub hosts: Vec<String>,
}

/// Makes a fresh CA and one certificate per name, signed by it.
pub fn make_certs(req: &CertRequest) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(&req.out)
        .map_err(|e| format!("cannot create {}: {e}", req.out.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tidaldb test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?).map_err(err)?;
    let mut written = vec![write(&req.out, "ca.pem", &ca.pem())?];
    for name in &req.names {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "certificate name {name:?} must be letters, digits, '-' or '_' (it names the files)"
            ));
        }
        let mut params = CertificateParams::new(req.hosts.clone()).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        written.push(write(&req.out, &format!("{name}.pem"), &cert.pem())?);
        written.push(write(
            &req.out,
            &format!("{name}.key"),
            &key.serialize_pem(),
        )?);
    }
    Ok(written)
}

fn err(e: rcgen::Error) -> String {
    format!("cannot make the certificate: {e}")
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    if name.ends_with(".key") {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    Ok(path)
}
