//! One device's delivery stream: which queued entries to send now, which await the device's
//! acknowledgement, when one not acknowledged is sent again, and when to tell the device it has
//! caught up. Pure: the durable queue lives in the shell's store, time is an argument.
//!
//! The stream runs in rounds. Each round the shell reads the head of the device's queue, most
//! urgent first ([`DeliveryWindow::page_size`] entries), and hands the keys to
//! [`DeliveryWindow::begin_round`]; it sends what [`DeliveryWindow::poll_send`] names, then asks
//! [`DeliveryWindow::end_round`] what to do next. A round sends at most
//! [`DeliveryConfig::round`] entries, so a FLASH that arrives mid-stream waits behind at most
//! that many before the next read of the queue puts it first.
//!
//! An entry sent stays *in flight* until the device acknowledges it (after it has stored the
//! cable). One not acknowledged within [`DeliveryConfig::redeliver_after`] is sent again; the
//! device dedups by cable id, so it sees each cable once.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::queue::QueueKey;

/// How a delivery stream paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long a delivery may go unacknowledged before it is sent again.
    pub redeliver_after: Duration,
    /// How many deliveries one round sends before the queue is read again: small, so a FLASH
    /// that arrives waits behind at most this many.
    pub round: usize,
    /// Most deliveries awaiting acknowledgement at once.
    pub max_in_flight: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            redeliver_after: Duration::from_secs(30),
            round: 16,
            max_in_flight: 1024,
        }
    }
}

/// What the stream does once a round has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRound {
    /// The round was full and the window has room: read the queue again at once.
    Again,
    /// Wait for an acknowledgement, a new arrival, or `redeliver_at`, whichever comes first.
    Wait {
        /// Tell the device it has caught up first, with the number of deliveries sent on this
        /// stream (resends included). Said once per transition to caught up.
        caught_up: Option<u64>,
        /// When the oldest delivery in flight is due to be sent again; `None` when nothing is
        /// in flight.
        redeliver_at: Option<Duration>,
    },
}

/// The round being sent: the head of the queue as read, and how far through it the stream is.
#[derive(Debug, Default)]
struct Round {
    page: Vec<QueueKey>,
    /// The page is shorter than was asked for, so it holds the whole queue.
    whole_queue: bool,
    next: usize,
    sent: usize,
    /// Entries that cannot be sent (their envelope cannot be read): not waited for.
    unsendable: BTreeSet<QueueKey>,
}

/// One device's delivery window over its durable queue.
#[derive(Debug)]
pub struct DeliveryWindow {
    config: DeliveryConfig,
    /// When each entry in flight was last sent.
    in_flight: HashMap<QueueKey, Duration>,
    /// The same entries by when they were sent, oldest first: the next redelivery is the first.
    by_time: BTreeSet<(Duration, QueueKey)>,
    round: Round,
    deliveries: u64,
    announced: bool,
}

impl DeliveryWindow {
    /// A window for a stream that has sent nothing yet.
    pub fn new(config: DeliveryConfig) -> Self {
        DeliveryWindow {
            config: DeliveryConfig {
                round: config.round.max(1),
                max_in_flight: config.max_in_flight.max(1),
                ..config
            },
            in_flight: HashMap::new(),
            by_time: BTreeSet::new(),
            round: Round::default(),
            deliveries: 0,
            announced: false,
        }
    }

    /// How many entries, from the head of the queue, the next round needs to see: everything
    /// in flight and a round more.
    pub fn page_size(&self) -> usize {
        self.in_flight.len() + self.config.round
    }

    /// Starts a round over `page`, the head of the queue as just read, most urgent first and at
    /// most [`Self::page_size`] long.
    pub fn begin_round(&mut self, page: Vec<QueueKey>) {
        let whole_queue = page.len() < self.page_size();
        self.round = Round {
            page,
            whole_queue,
            ..Round::default()
        };
    }

    /// The next entry of this round to send at `now`, counted as sent; `None` once the round is
    /// full, the window is full, or the page has nothing more that is due.
    pub fn poll_send(&mut self, now: Duration) -> Option<QueueKey> {
        while self.round.sent < self.config.round {
            let key = *self.round.page.get(self.round.next)?;
            self.round.next += 1;
            match self.in_flight.get(&key) {
                // Sent, and not yet due again.
                Some(&sent) if now.saturating_sub(sent) < self.config.redeliver_after => continue,
                // Due again: a resend takes no more room in the window.
                Some(&sent) => {
                    self.by_time.remove(&(sent, key));
                }
                // New, but the window is full: only resends go until an acknowledgement.
                None if self.in_flight.len() >= self.config.max_in_flight => continue,
                None => {}
            }
            self.in_flight.insert(key, now);
            self.by_time.insert((now, key));
            self.round.sent += 1;
            return Some(key);
        }
        None
    }

    /// The entry [`Self::poll_send`] just named could not be sent (its envelope is unreadable):
    /// it is not in flight, and the stream does not wait for it.
    pub fn unsendable(&mut self, key: QueueKey) {
        if let Some(sent) = self.in_flight.remove(&key) {
            self.by_time.remove(&(sent, key));
            self.round.sent = self.round.sent.saturating_sub(1);
        }
        self.round.unsendable.insert(key);
    }

    /// The device acknowledged `key`, and the shell made the acknowledgement durable. Returns
    /// whether it was in flight (a duplicate or unknown acknowledgement is harmless).
    pub fn acked(&mut self, key: QueueKey) -> bool {
        match self.in_flight.remove(&key) {
            Some(sent) => {
                self.by_time.remove(&(sent, key));
                true
            }
            None => false,
        }
    }

    /// What to do once this round's entries have been sent.
    pub fn end_round(&mut self) -> AfterRound {
        let sent = self.round.sent;
        if sent > 0 {
            self.deliveries += sent as u64;
            self.announced = false;
        }
        if sent == self.config.round && self.in_flight.len() < self.config.max_in_flight {
            return AfterRound::Again;
        }
        let caught_up =
            self.round.whole_queue
                && self.round.page.iter().all(|key| {
                    self.in_flight.contains_key(key) || self.round.unsendable.contains(key)
                });
        let caught_up = if caught_up && !self.announced {
            self.announced = true;
            Some(self.deliveries)
        } else {
            None
        };
        AfterRound::Wait {
            caught_up,
            redeliver_at: self.next_redelivery(),
        }
    }

    /// When the oldest delivery in flight is due to be sent again.
    pub fn next_redelivery(&self) -> Option<Duration> {
        self.by_time
            .first()
            .map(|(sent, _)| sent.saturating_add(self.config.redeliver_after))
    }

    /// How many deliveries await acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
