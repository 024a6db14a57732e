//! Valise relay node (to be built by the relay issues).
//!
//! It will hold the node server run by ministry IT: the QUIC listener, PKI and enrolment, the
//! directory, durable precedence queues with custody transfer, federation between the hub and
//! the posts, and the node's audit log. Nothing is implemented yet.
