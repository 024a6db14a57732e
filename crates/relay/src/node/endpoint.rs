//! The node's UDP socket and QUIC endpoint.
//!
//! - The socket asks the kernel for large buffers: under load the endpoint reads the socket
//!   between other work, and a datagram the kernel drops for want of room costs QUIC a loss
//!   and a retransmission timer, tens of milliseconds that a FLASH queued behind it waits.
//! - The stateless reset key, and the key that marks this node's connection ids as its own,
//!   are derived from the node's signing key, so they are the same after a restart: a
//!   neighbour still holding a connection to the old process gets a stateless reset for its
//!   next packet (the new process recognises the connection id as one of its own and knows
//!   it has no such connection), and dials again, instead of waiting out the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use valise_crypto::identity::IdentityKeyPair;
use zeroize::Zeroizing;

/// What the node asks for each socket buffer; the kernel grants at most `net.core.rmem_max`
/// and `net.core.wmem_max`.
pub(super) const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Below this, the operator is told to raise the kernel's limits.
const SOCKET_BUFFER_WARN_BELOW: usize = 1024 * 1024;

/// A socket bound to `addr` with large buffers.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, only worse under load.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    if let Ok(granted) = socket.recv_buffer_size()
        && granted < SOCKET_BUFFER_WARN_BELOW
    {
        tracing::warn!(
            granted,
            asked = SOCKET_BUFFER_BYTES,
            "the kernel granted a small UDP receive buffer; under load datagrams may be dropped. \
             Raise net.core.rmem_max (sysctl) to at least 4194304"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The endpoint configuration: the stateless reset key and connection ids this node always
/// uses.
pub(super) fn config(node_key: &IdentityKeyPair) -> Result<quinn::EndpointConfig, String> {
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key(node_key)?));
    let cid_key = u64::from_be_bytes(derive::<8>(node_key, b"quic connection ids")?);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    Ok(config)
}

fn reset_key(node_key: &IdentityKeyPair) -> Result<ring::hmac::Key, String> {
    let key = Zeroizing::new(derive::<32>(node_key, b"quic stateless reset")?);
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key[..]))
}

/// HKDF-SHA256 of the node's signing key seed, for `purpose` only: the result reveals
/// nothing of the signing key, and is the same across restarts.
fn derive<const N: usize>(node_key: &IdentityKeyPair, purpose: &[u8]) -> Result<[u8; N], String> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let mut out = [0u8; N];
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"valise/1")
        .extract(&node_key.seed()[..])
        .expand(&[purpose], Len(N))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| "the endpoint keys could not be derived".to_owned())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_key_is_the_same_for_the_same_node_and_differs_between_nodes() {
        let tag = |seed: u8| {
            let key = IdentityKeyPair::from_seed(&[seed; 32]).map_err(|e| e.to_string());
            let key = key.and_then(|k| reset_key(&k));
            key.map(|k| ring::hmac::sign(&k, b"connection id").as_ref().to_vec())
        };
        assert_eq!(
            tag(1),
            tag(1),
            "a restarted node resets its old connections"
        );
        assert_ne!(tag(1), tag(2));
    }

    #[test]
    fn the_socket_gets_larger_buffers_than_the_default() {
        let size = |socket: std::io::Result<std::net::UdpSocket>| {
            socket
                .and_then(|s| Socket::from(s).recv_buffer_size())
                .map_err(|e| e.to_string())
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let default = size(std::net::UdpSocket::bind(loopback));
        let granted = size(bind(loopback));
        // Even where the kernel caps the request at its default limit, it grants double that.
        assert!(
            matches!((&granted, &default), (Ok(g), Ok(d)) if g > d),
            "{granted:?} against {default:?}"
        );
    }
}
