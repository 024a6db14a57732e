//! A node's role in the network, as the root certifies it: the organisational unit of the
//! node's certificate says `valise hub` or `valise post`. Only the root issues node
//! certificates, so a role read from one is the root's word, not the node's.

/// The role the root gives a node in its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Headquarters: every post connects to it.
    Hub,
    /// An embassy, consulate or mission.
    Post,
}

impl Role {
    /// The organisational unit a node certificate carries for this role.
    pub fn unit(self) -> &'static str {
        match self {
            Role::Hub => "valise hub",
            Role::Post => "valise post",
        }
    }
}

/// The role a node certificate (DER) was issued for, or `None` if it names none (a device's
/// certificate, or a node's from before roles were certified).
pub fn certified_role(cert_der: &[u8]) -> Option<Role> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let units: Vec<&str> = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|u| u.as_str().ok())
        .collect();
    match units.as_slice() {
        [unit] if *unit == Role::Hub.unit() => Some(Role::Hub),
        [unit] if *unit == Role::Post.unit() => Some(Role::Post),
        _ => None,
    }
}
