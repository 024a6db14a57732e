//! Connection gates: how many connections may wait at a stage, in all and per source address.
//!
//! Until its certificate is checked, a connection is nobody's: it could be an enrolled device
//! mid-handshake, a device enrolling, or a flood. A handshake passes a gate bounded per source
//! IP (and, loosely, in all) and holds its place for a few seconds at most; a connection that
//! then shows no certificate (to enrol) passes a second gate, bounded in all and per source,
//! for as long as it stays. Idle connections from one address, or a few, fill those gates,
//! never the room of enrolled devices, whose connections are counted apart
//! ([`crate::limits::Limits::max_connections`]). No I/O and no clock: the network shell asks,
//! and holds a [`Pass`] while the connection waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::reason::Reason;

/// Why a gate turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The gate holds as many connections as it may.
    Total,
    /// This source address holds as many as one address may.
    Source,
}

impl Full {
    /// The reason recorded in metrics and the audit log.
    pub fn reason(self) -> Reason {
        match self {
            Full::Total => Reason::UnauthenticatedFull,
            Full::Source => Reason::SourceFull,
        }
    }
}

/// A bounded stage.
#[derive(Debug)]
pub struct Gate {
    max_total: u32,
    max_per_source: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: u32,
    per_source: HashMap<IpAddr, u32>,
}

/// A connection inside a gate; leaving is dropping it.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Gate {
    /// A gate for at most `max_total` connections, `max_per_source` from one address.
    pub fn new(max_total: u32, max_per_source: u32) -> Arc<Self> {
        Arc::new(Gate {
            max_total,
            max_per_source,
            state: Mutex::new(State::default()),
        })
    }

    /// Lets a connection from `source` in, or says why not.
    pub fn enter(self: &Arc<Self>, source: IpAddr) -> Result<Pass, Full> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.total >= self.max_total {
            return Err(Full::Total);
        }
        let from_source = state.per_source.entry(source).or_insert(0);
        if *from_source >= self.max_per_source {
            return Err(Full::Source);
        }
        *from_source += 1;
        state.total += 1;
        Ok(Pass {
            gate: Arc::clone(self),
            source,
        })
    }

    /// Connections inside, in all.
    pub fn len(&self) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Whether the gate is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Source addresses with a connection inside: the map shrinks as they leave.
    pub fn sources(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .per_source
            .len()
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut state = self
            .gate
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_address_cannot_take_the_whole_gate_and_leaving_frees_its_place() {
        let gate = Gate::new(5, 2);
        let a1 = gate.enter(ip(1)).unwrap();
        let _a2 = gate.enter(ip(1)).unwrap();
        assert_eq!(gate.enter(ip(1)).err(), Some(Full::Source));
        let _b1 = gate.enter(ip(2)).unwrap();
        let _b2 = gate.enter(ip(2)).unwrap();
        let _c1 = gate.enter(ip(3)).unwrap();
        assert_eq!(gate.enter(ip(4)).err(), Some(Full::Total));
        assert_eq!(gate.len(), 5);
        drop(a1);
        assert_eq!(gate.len(), 4);
        let _d1 = gate.enter(ip(4)).unwrap();
        assert_eq!(Full::Source.reason().as_str(), "source_full");
    }

    #[test]
    fn the_per_source_map_shrinks_as_connections_leave() {
        let gate = Gate::new(1000, 1);
        let passes: Vec<Pass> = (0..200).map(|i| gate.enter(ip(i)).unwrap()).collect();
        assert_eq!(gate.sources(), 200);
        drop(passes);
        assert_eq!(gate.sources(), 0);
        assert!(gate.is_empty());
    }
}
