//! A device's delivery stream, as the device observes it: what arrives, in what order, what
//! arrives again when it does not acknowledge, and when it is told it has caught up. The
//! durable queue is modelled by a sorted map, as the store's queue tree sorts by key; the
//! model counts every entry it reads, as the store's reads cost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use valise_proto::v1::Precedence;
use valise_relay_core::delivery::{DeliveryConfig, DeliveryWindow};
use valise_relay_core::queue::{QueueKey, precedence_of, rank};

const REDELIVER: Duration = Duration::from_secs(30);
const SIZE: u64 = 4096;

fn config() -> DeliveryConfig {
    DeliveryConfig {
        redeliver_after: REDELIVER,
        max_in_flight: 64,
        max_in_flight_bytes: 1 << 30,
        page: 128,
    }
}

/// The device's queue on the node: entries leave it only when acknowledged.
#[derive(Default)]
struct Queue {
    entries: BTreeMap<QueueKey, u64>,
    /// Entries read from the queue so far, over every page.
    reads: usize,
}

impl Queue {
    fn key(precedence: Precedence, seq: u64) -> QueueKey {
        QueueKey::new(precedence, seq)
    }

    fn push(&mut self, precedence: Precedence, seq: u64) -> QueueKey {
        let key = Self::key(precedence, seq);
        self.entries.insert(key, seq);
        key
    }

    /// A cable arrives while the stream runs: queued durably, then the stream is told.
    fn arrive(&mut self, window: &mut DeliveryWindow, precedence: Precedence, seq: u64) {
        let key = self.push(precedence, seq);
        window.queued(key);
    }

    /// The page reads the window asks for, as the shell serves them.
    fn serve_pages(&mut self, window: &mut DeliveryWindow) {
        while let Some(request) = window.wants_page() {
            let page: Vec<QueueKey> = self
                .entries
                .keys()
                .filter(|k| request.after.is_none_or(|after| **k > after))
                .take(request.limit)
                .copied()
                .collect();
            self.reads += page.len();
            window.loaded(request, &page);
        }
    }

    /// Sends what the window allows at `now`, at most `n`, as the shell does: by arrival
    /// number.
    fn send(&mut self, window: &mut DeliveryWindow, now: Duration, n: usize) -> Vec<u64> {
        let mut sent = Vec::new();
        while sent.len() < n {
            self.serve_pages(window);
            let Some(key) = window.poll_send(now) else {
                break;
            };
            match self.entries.get(&key) {
                Some(seq) => {
                    window.sent(key, SIZE);
                    sent.push(*seq);
                }
                None => window.gone(key),
            }
        }
        sent
    }

    /// The device acknowledges `seq`; the node removes it from the queue.
    fn ack(&mut self, window: &mut DeliveryWindow, seq: u64) -> bool {
        let key = *self.entries.iter().find(|(_, s)| **s == seq).unwrap().0;
        self.entries.remove(&key);
        window.acked(key)
    }

    /// Runs the stream at `now`, the device acknowledging everything as it arrives, until the
    /// queue is empty.
    fn drain(&mut self, window: &mut DeliveryWindow, now: Duration) -> Vec<u64> {
        let mut order = Vec::new();
        loop {
            let sent = self.send(window, now, 16);
            for seq in &sent {
                assert!(self.ack(window, *seq));
            }
            order.extend(&sent);
            if sent.is_empty() {
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
    assert!(queue.entries.is_empty());
}

#[test]
fn a_flash_that_arrives_mid_stream_is_the_next_sent() {
    let mut queue = Queue::default();
    for seq in 0..1000 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    let mut order = Vec::new();
    for step in 0.. {
        // Three sends between two looks at what arrived.
        let sent = queue.send(&mut window, Duration::ZERO, 3);
        if sent.is_empty() {
            break;
        }
        for seq in &sent {
            queue.ack(&mut window, *seq);
        }
        order.extend(sent);
        if step == 5 {
            queue.arrive(&mut window, Precedence::Flash, 1000);
        }
    }
    let flash_at = order.iter().position(|s| *s == 1000).unwrap();
    assert_eq!(flash_at, 18, "sent right after the sends it arrived during");
    let mut rest = order.clone();
    rest.remove(flash_at);
    assert_eq!(
        rest,
        (0..1000).collect::<Vec<_>>(),
        "ROUTINE in arrival order, each once"
    );
}

#[test]
fn each_entry_is_read_once_however_long_the_queue() {
    let mut queue = Queue::default();
    for seq in 0..10_000 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    let mut order = Vec::new();
    let mut most_held = 0;
    let mut next_arrival = 1000;
    loop {
        let sent = queue.send(&mut window, Duration::ZERO, 16);
        most_held = most_held.max(window.pending() + window.in_flight());
        if sent.is_empty() {
            break;
        }
        for seq in &sent {
            queue.ack(&mut window, *seq);
        }
        order.extend(sent);
        // ROUTINE keeps arriving beyond what the window has read: left to a later page.
        if order.len() >= next_arrival && next_arrival <= 4000 {
            queue.arrive(
                &mut window,
                Precedence::Routine,
                10_000 + next_arrival as u64,
            );
            next_arrival += 1000;
        }
    }
    assert_eq!(order.len(), 10_004);
    assert_eq!(queue.reads, 10_004, "no entry read twice");
    assert!(
        most_held <= 128 + 64,
        "the window holds at most a page and what is in flight, not the queue: {most_held}"
    );
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "arrival order");
}

#[test]
fn an_unacknowledged_delivery_is_sent_again_when_due_and_not_before() {
    let mut queue = Queue::default();
    queue.push(Precedence::Flash, 7);
    let mut window = DeliveryWindow::new(config());
    let start = Duration::from_secs(100);

    assert_eq!(queue.send(&mut window, start, 16), vec![7]);
    assert_eq!(window.caught_up(), Some(1), "caught up once all is sent");
    assert_eq!(window.next_redelivery(), Some(start + REDELIVER));

    let just_before = start + REDELIVER - Duration::from_millis(1);
    assert!(
        queue.send(&mut window, just_before, 16).is_empty(),
        "still in flight: not sent twice"
    );
    assert_eq!(window.caught_up(), None, "caught up is said once");

    assert_eq!(
        queue.send(&mut window, start + REDELIVER, 16),
        vec![7],
        "sent again once due"
    );
    assert_eq!(
        window.caught_up(),
        Some(2),
        "the resend counts as a delivery on this stream"
    );
    assert_eq!(window.next_redelivery(), Some(start + REDELIVER * 2));

    assert!(queue.ack(&mut window, 7));
    assert!(
        !window.acked(Queue::key(Precedence::Flash, 7)),
        "a duplicate ack is harmless"
    );
    assert!(
        queue
            .send(&mut window, start + REDELIVER * 10, 16)
            .is_empty(),
        "never again once acknowledged"
    );
    assert_eq!(window.next_redelivery(), None);
}

#[test]
fn the_window_holds_at_most_its_size_yet_resends_what_is_due() {
    let mut queue = Queue::default();
    for seq in 0..100 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    // The device acknowledges nothing: the window fills.
    let sent = queue.send(&mut window, Duration::ZERO, 1000);
    assert_eq!(sent, (0..64).collect::<Vec<_>>());
    assert_eq!(window.in_flight(), 64);
    assert_eq!(window.caught_up(), None, "36 entries were never sent");
    assert_eq!(window.next_redelivery(), Some(REDELIVER));

    // Full: new entries wait, but the overdue ones are sent again, oldest first.
    let resent = queue.send(&mut window, REDELIVER, 16);
    assert_eq!(resent, (0..16).collect::<Vec<_>>());
    assert_eq!(window.in_flight(), 64, "a resend takes no more room");

    // One acknowledgement makes room for one new entry, ahead of the remaining resends
    // only if it is more urgent: these are all ROUTINE, so the resends go first.
    assert!(queue.ack(&mut window, 20));
    let next = queue.send(&mut window, REDELIVER, 100);
    assert_eq!(next.first(), Some(&16));
    assert_eq!(
        next.last(),
        Some(&64),
        "then the one new entry there is room for"
    );
    assert_eq!(window.in_flight(), 64);
}

#[test]
fn bytes_in_flight_are_bounded_but_one_delivery_always_goes() {
    let mut queue = Queue::default();
    for seq in 0..10 {
        queue.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(DeliveryConfig {
        max_in_flight_bytes: 3 * SIZE,
        ..config()
    });
    assert_eq!(queue.send(&mut window, Duration::ZERO, 100), vec![0, 1, 2]);
    queue.ack(&mut window, 0);
    assert_eq!(queue.send(&mut window, Duration::ZERO, 100), vec![3]);
    // A FLASH is not held by the bytes of ROUTINE ahead of it: they are what it would wait
    // behind, and they are bounded.
    queue.arrive(&mut window, Precedence::Flash, 10);
    queue.arrive(&mut window, Precedence::Immediate, 11);
    assert_eq!(queue.send(&mut window, Duration::ZERO, 100), vec![10, 11]);

    // A cable larger than the whole budget still goes, alone.
    let mut window = DeliveryWindow::new(DeliveryConfig {
        max_in_flight_bytes: 1,
        ..config()
    });
    let mut queue = Queue::default();
    queue.push(Precedence::Routine, 0);
    queue.push(Precedence::Routine, 1);
    assert_eq!(queue.send(&mut window, Duration::ZERO, 100), vec![0]);
    assert!(queue.ack(&mut window, 0));
    assert_eq!(queue.send(&mut window, Duration::ZERO, 100), vec![1]);
}

#[test]
fn caught_up_waits_for_the_whole_queue_and_not_for_what_is_gone() {
    let mut queue = Queue::default();
    for seq in 0..3 {
        queue.push(Precedence::Priority, seq);
    }
    let mut window = DeliveryWindow::new(config());
    queue.serve_pages(&mut window);
    // Purged before it was sent (its device's clearance lowered, say): the stream does not
    // wait for it.
    queue.entries.remove(&Queue::key(Precedence::Priority, 0));
    assert_eq!(queue.send(&mut window, Duration::ZERO, 16), vec![1, 2]);
    assert_eq!(window.caught_up(), Some(2));
    assert_eq!(window.in_flight(), 2, "the purged entry is not in flight");

    // A queue longer than a page is never "caught up" on one page.
    let mut long = Queue::default();
    for seq in 0..300 {
        long.push(Precedence::Routine, seq);
    }
    let mut window = DeliveryWindow::new(config());
    let sent = long.send(&mut window, Duration::ZERO, 1000);
    assert_eq!(sent.len(), 64, "the window is full");
    assert_eq!(window.caught_up(), None, "236 entries were never sent");
    for seq in sent {
        long.ack(&mut window, seq);
    }
    assert_eq!(long.drain(&mut window, Duration::ZERO).len(), 236);
    assert_eq!(window.caught_up(), Some(300));
}

#[test]
fn a_new_stream_after_a_disconnect_sends_everything_not_acknowledged() {
    let mut queue = Queue::default();
    for seq in 0..5 {
        queue.push(Precedence::Immediate, seq);
    }
    let mut window = DeliveryWindow::new(config());
    assert_eq!(
        queue.send(&mut window, Duration::ZERO, 16),
        vec![0, 1, 2, 3, 4]
    );
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
fn an_arrival_told_before_the_first_page_is_read_is_sent_once() {
    // The shell listens for arrivals before it reads the queue, so a cable stored meanwhile is
    // both told and read: it goes once.
    let mut queue = Queue::default();
    let mut window = DeliveryWindow::new(config());
    queue.arrive(&mut window, Precedence::Flash, 0);
    queue.push(Precedence::Routine, 1);
    assert_eq!(queue.drain(&mut window, Duration::ZERO), vec![0, 1]);
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

#[test]
fn two_lanes_share_the_queue_each_precedence_on_its_own_stream() {
    use valise_proto::v1::DeliveryLane;
    use valise_relay_core::delivery::ranks;
    let mut queue = Queue::default();
    for seq in 0..300 {
        queue.push(Precedence::Routine, seq);
    }
    queue.push(Precedence::Priority, 300);
    queue.push(Precedence::Immediate, 301);
    let mut urgent = DeliveryWindow::for_lane(config(), DeliveryLane::Urgent);
    let mut other = DeliveryWindow::for_lane(config(), DeliveryLane::Other);
    // The routine stream fills its window and the device acknowledges nothing on it.
    let routine = queue.send(&mut other, Duration::ZERO, 1000);
    assert_eq!(routine.len(), 64);
    assert_eq!(routine[0], 300, "PRIORITY first on its lane");
    assert!(routine.iter().all(|seq| *seq <= 300));
    assert_eq!(queue.send(&mut urgent, Duration::ZERO, 1000), vec![301]);
    assert_eq!(
        urgent.caught_up(),
        Some(1),
        "the urgent lane read no routine entry"
    );
    // A FLASH arriving now goes on the urgent stream at once, whatever the other holds.
    queue.arrive(&mut urgent, Precedence::Flash, 302);
    queue.arrive(&mut other, Precedence::Flash, 302);
    queue.arrive(&mut urgent, Precedence::Routine, 303);
    queue.arrive(&mut other, Precedence::Routine, 303);
    assert_eq!(queue.send(&mut urgent, Duration::ZERO, 1000), vec![302]);
    assert!(
        queue.send(&mut other, Duration::ZERO, 1000).is_empty(),
        "the routine stream is still full, and never sends the FLASH"
    );
    for seq in routine {
        queue.ack(&mut other, seq);
    }
    queue.ack(&mut urgent, 301);
    queue.ack(&mut urgent, 302);
    let rest = queue.drain(&mut other, Duration::ZERO);
    assert_eq!(
        rest.len(),
        300 + 1 - 64 + 1,
        "every other entry, once: {rest:?}"
    );
    assert!(queue.entries.is_empty());
    assert_eq!(ranks(DeliveryLane::All), 0..=u8::MAX);
}
