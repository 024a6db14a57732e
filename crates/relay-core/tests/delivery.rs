//! A device's delivery stream, as the device observes it: what arrives, in what order, what
//! arrives again when it does not acknowledge, and when it is told it has caught up. The
//! durable queue is modelled by a sorted map, as the store's queue tree sorts by key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use valise_proto::v1::Precedence;
use valise_relay_core::delivery::{AfterRound, DeliveryConfig, DeliveryWindow};
use valise_relay_core::queue::{QueueKey, precedence_of, rank};

const REDELIVER: Duration = Duration::from_secs(30);

fn config() -> DeliveryConfig {
    DeliveryConfig {
        redeliver_after: REDELIVER,
        round: 16,
        max_in_flight: 64,
    }
}

/// The device's queue on the node: entries leave it only when acknowledged.
#[derive(Default)]
struct Queue(BTreeMap<QueueKey, u64>);

impl Queue {
    fn push(&mut self, precedence: Precedence, seq: u64) {
        self.0.insert(QueueKey::new(precedence, seq), seq);
    }

    fn head(&self, n: usize) -> Vec<QueueKey> {
        self.0.keys().take(n).copied().collect()
    }

    /// One round at `now`, as the shell runs it: what was sent (by arrival number), and what
    /// the stream does next.
    fn round(&self, window: &mut DeliveryWindow, now: Duration) -> (Vec<u64>, AfterRound) {
        window.begin_round(self.head(window.page_size()));
        let mut sent = Vec::new();
        while let Some(key) = window.poll_send(now) {
            sent.push(self.0[&key]);
        }
        (sent, window.end_round())
    }

    /// The device acknowledges `seq`; the node removes it from the queue.
    fn ack(&mut self, window: &mut DeliveryWindow, seq: u64) -> bool {
        let key = *self.0.iter().find(|(_, s)| **s == seq).unwrap().0;
        self.0.remove(&key);
        window.acked(key)
    }

    /// Runs the stream at `now`, the device acknowledging everything at once, until it waits.
    fn drain(&mut self, window: &mut DeliveryWindow, now: Duration) -> Vec<u64> {
        let mut order = Vec::new();
        loop {
            let (sent, next) = self.round(window, now);
            for seq in &sent {
                assert!(self.ack(window, *seq));
            }
            order.extend(sent);
            if matches!(next, AfterRound::Wait { .. }) && self.0.is_empty() {
                return order;
            }
        }
    }
}

#[test]
fn precedence_first_then_arrival() {
    let mut queue = Queue::default();
    for (p, seq) in [
        (Precedence::Routine, 0),
        (Precedence::Priority, 1),
        (Precedence::Immediate, 2),
        (Precedence::Routine, 3),
        (Precedence::Flash, 4),
        (Precedence::Immediate, 5),
    ] {
        queue.push(p, seq);
    }
    let mut window = DeliveryWindow::new(config());
    assert_eq!(
        queue.drain(&mut window, Duration::ZERO),
        vec![4, 2, 5, 1, 0, 3]
    );
}

#[test]
fn a_flash_that_arrives_mid_stream_waits_behind_at_most_one_round() {
    let mut queue = Queue::default();
    for seq in 0..1000 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    // The device acknowledges as it goes; a FLASH arrives after the third round was sent.
    let mut order = Vec::new();
    for round in 0.. {
        let (sent, next) = queue.round(&mut window, Duration::ZERO);
        assert!(sent.len() <= 16, "a round sends at most 16");
        for seq in &sent {
            queue.ack(&mut window, *seq);
        }
        order.extend(sent);
        if round == 2 {
            queue.push(Precedence::Flash, 1000);
        }
        if queue.0.is_empty() {
            assert!(matches!(next, AfterRound::Wait { .. }));
            break;
        }
    }
    let flash_at = order.iter().position(|s| *s == 1000).unwrap();
    assert_eq!(
        flash_at, 48,
        "first of the round after the one it arrived during"
    );
    let mut rest = order.clone();
    rest.remove(flash_at);
    assert_eq!(
        rest,
        (0..1000).collect::<Vec<_>>(),
        "ROUTINE in arrival order"
    );
}

#[test]
fn an_unacknowledged_delivery_is_sent_again_when_due_and_not_before() {
    let mut queue = Queue::default();
    queue.push(Precedence::Flash, 7);
    let mut window = DeliveryWindow::new(config());
    let start = Duration::from_secs(100);

    let (sent, next) = queue.round(&mut window, start);
    assert_eq!(sent, vec![7]);
    assert_eq!(
        next,
        AfterRound::Wait {
            caught_up: Some(1),
            redeliver_at: Some(start + REDELIVER),
        },
        "caught up, and the shell is told when to look again"
    );

    let just_before = start + REDELIVER - Duration::from_millis(1);
    let (sent, next) = queue.round(&mut window, just_before);
    assert!(sent.is_empty(), "still in flight: not sent twice");
    assert_eq!(
        next,
        AfterRound::Wait {
            caught_up: None,
            redeliver_at: Some(start + REDELIVER),
        },
        "caught up is said once"
    );

    let (sent, next) = queue.round(&mut window, start + REDELIVER);
    assert_eq!(sent, vec![7], "sent again once due");
    assert_eq!(
        next,
        AfterRound::Wait {
            caught_up: Some(2),
            redeliver_at: Some(start + REDELIVER * 2),
        },
        "the resend counts as a delivery on this stream"
    );

    assert!(queue.ack(&mut window, 7));
    assert!(
        !window.acked(QueueKey::new(Precedence::Flash, 7)),
        "a duplicate ack is harmless"
    );
    let (sent, next) = queue.round(&mut window, start + REDELIVER * 10);
    assert!(sent.is_empty(), "never again once acknowledged");
    assert_eq!(
        next,
        AfterRound::Wait {
            caught_up: None,
            redeliver_at: None,
        }
    );
}

#[test]
fn the_window_holds_at_most_its_size_yet_resends_what_is_due() {
    let mut queue = Queue::default();
    for seq in 0..100 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    let mut sent = Vec::new();
    let mut now = Duration::ZERO;
    // The device acknowledges nothing: the window fills, a round at a time.
    loop {
        let (round, next) = queue.round(&mut window, now);
        sent.extend(round);
        now += Duration::from_millis(1);
        if let AfterRound::Wait {
            caught_up,
            redeliver_at,
        } = next
        {
            assert_eq!(caught_up, None, "36 entries were never sent");
            assert_eq!(
                redeliver_at,
                Some(REDELIVER),
                "the first round is due first"
            );
            break;
        }
    }
    assert_eq!(sent, (0..64).collect::<Vec<_>>());
    assert_eq!(window.in_flight(), 64);

    // Full: new entries wait, but the overdue ones are sent again.
    let (resent, _) = queue.round(&mut window, REDELIVER);
    assert_eq!(resent, (0..16).collect::<Vec<_>>());
    assert_eq!(window.in_flight(), 64, "a resend takes no more room");

    // One acknowledgement makes room for one new entry.
    assert!(queue.ack(&mut window, 20));
    let (round, _) = queue.round(&mut window, REDELIVER);
    assert_eq!(round, vec![64]);
}

#[test]
fn caught_up_waits_for_the_whole_queue_and_not_for_what_cannot_be_sent() {
    let mut queue = Queue::default();
    for seq in 0..3 {
        queue.push(Precedence::Priority, seq);
    }
    let mut window = DeliveryWindow::new(config());
    window.begin_round(queue.head(window.page_size()));
    let first = window.poll_send(Duration::ZERO).unwrap();
    // Its envelope cannot be read: the shell says so, and the stream does not wait for it.
    window.unsendable(first);
    let mut sent = Vec::new();
    while let Some(key) = window.poll_send(Duration::ZERO) {
        sent.push(key);
    }
    assert_eq!(sent.len(), 2);
    assert_eq!(
        window.end_round(),
        AfterRound::Wait {
            caught_up: Some(2),
            redeliver_at: Some(REDELIVER),
        }
    );
    assert_eq!(
        window.in_flight(),
        2,
        "the unsendable entry is not in flight"
    );

    // A longer queue than a page is never "caught up" on one page.
    let mut long = Queue::default();
    for seq in 0..40 {
        long.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(DeliveryConfig {
        round: 16,
        max_in_flight: 16,
        ..config()
    });
    let (sent, next) = long.round(&mut window, Duration::ZERO);
    assert_eq!(sent.len(), 16);
    assert_eq!(
        next,
        AfterRound::Wait {
            caught_up: None,
            redeliver_at: Some(REDELIVER),
        },
        "the window is full and 24 entries were never sent"
    );
}

#[test]
fn a_new_stream_after_a_disconnect_sends_everything_not_acknowledged() {
    let mut queue = Queue::default();
    for seq in 0..5 {
        queue.push(Precedence::Immediate, seq);
    }
    let mut window = DeliveryWindow::new(config());
    let (sent, _) = queue.round(&mut window, Duration::ZERO);
    assert_eq!(sent, vec![0, 1, 2, 3, 4]);
    queue.ack(&mut window, 1);
    queue.ack(&mut window, 3);
    drop(window);

    // The device reconnects: a new stream, the same durable queue.
    let mut window = DeliveryWindow::new(config());
    assert_eq!(
        queue.drain(&mut window, Duration::from_secs(1)),
        vec![0, 2, 4]
    );
}

#[test]
fn queue_keys_sort_on_disk_as_in_memory() {
    let keys = [
        QueueKey::new(Precedence::Routine, 5),
        QueueKey::new(Precedence::Flash, 900),
        QueueKey::new(Precedence::Flash, 2),
        QueueKey::new(Precedence::Priority, 1),
    ];
    let mut by_value = keys.to_vec();
    by_value.sort();
    let mut by_bytes = keys.to_vec();
    by_bytes.sort_by_key(|k| k.to_bytes());
    assert_eq!(by_value, by_bytes);
    for k in keys {
        assert_eq!(QueueKey::from_bytes(&k.to_bytes()), Some(k));
        assert_eq!(
            precedence_of(rank(precedence_of(k.rank))),
            precedence_of(k.rank)
        );
    }
    assert_eq!(QueueKey::from_bytes(&[0; 3]), None);
    assert_eq!(
        precedence_of(rank(Precedence::Unspecified)),
        Precedence::Routine
    );
}
