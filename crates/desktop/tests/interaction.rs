//! The desktop app driven as a diplomat drives it, by the accessible labels of its controls,
//! against a real post on loopback: enrolment, unlock, a FLASH arriving on top of the inbox,
//! reading and acknowledging it (and the sender's window seeing it acknowledged), a refusal
//! before sealing that names the addressee, sending with an attachment, forwarding a NODIS
//! cable refused, and the emergency wipe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{World, click, labels, sync, type_into, until, until_shown};
use egui_kittest::kittest::{NodeT, Queryable};
use valise_client::{CableDraft, Caveat, Classification, Precedence};
use valise_desktop::demo::{AMBASSADOR, COLLEAGUES, PASSPHRASE};

const ALICE: usize = 0;
const CAROL: usize = 1;
const DAVID: usize = 2;

fn cable(
    to: &str,
    classification: Classification,
    caveats: &[Caveat],
    precedence: Precedence,
    subject: &str,
) -> CableDraft {
    CableDraft {
        action: vec![to.into()],
        info: vec![],
        classification,
        precedence,
        niact: false,
        caveats: caveats.to_vec(),
        tags: vec!["PREL".into()],
        subject: subject.into(),
        text: "Text of the cable.".into(),
        attachments: vec![],
        references: vec![],
    }
}

#[test]
fn enrol_unlock_then_a_flash_is_read_and_acknowledged() {
    let world = World::new();
    // David's window: he sends, and watches his Sent view.
    let mut david = world.window_for(&COLLEAGUES[DAVID]);
    let mut me = world.fresh_window(AMBASSADOR.user);
    assert_eq!(me.state().screen_name(), "enrol");

    // Enrolment, first with passphrases that differ: refused in words, nothing made.
    let invitation = world.network.invitation(&AMBASSADOR).unwrap();
    type_into(&mut me, "Node address", &invitation.node_addr);
    type_into(&mut me, "One-time code", &invitation.code);
    type_into(&mut me, "Root fingerprint", &invitation.ca_fingerprint);
    type_into(&mut me, "New passphrase", PASSPHRASE);
    type_into(
        &mut me,
        "Passphrase again",
        "something else entirely, typed",
    );
    click(&mut me, "Enrol this device");
    until_shown(&mut me, "The two passphrases differ");
    assert_eq!(me.state().screen_name(), "enrol");
    type_into(&mut me, "Passphrase again", PASSPHRASE);
    click(&mut me, "Enrol this device");
    until(&mut [&mut me], "enrolment to finish", |h| {
        h.state().screen_name() == "enrolled"
    });
    // The root's fingerprint is shown for comparison with ministry IT's.
    assert!(
        me.query_by_label_contains(&invitation.ca_fingerprint)
            .is_some()
    );
    me.check_accessibility();
    click(&mut me, "The fingerprint matches: continue");
    assert_eq!(me.state().screen_name(), "main");

    // Locked, then a wrong passphrase, then the right one.
    click(&mut me, "Lock");
    assert_eq!(me.state().screen_name(), "unlock");
    me.check_accessibility();
    type_into(&mut me, "Passphrase", "not the passphrase at all, no");
    click(&mut me, "Unlock");
    until_shown(&mut me, "wrong passphrase");
    assert_eq!(me.state().screen_name(), "unlock");
    type_into(&mut me, "Passphrase", PASSPHRASE);
    click(&mut me, "Unlock");
    until(&mut [&mut me], "unlock", |h| {
        h.state().screen_name() == "main"
    });

    // A routine cable first, then a FLASH: the FLASH is on top, with its banner.
    let handle = world
        .runtime
        .block_on(world.network.enrol(&COLLEAGUES[ALICE]))
        .unwrap()
        .0;
    world
        .runtime
        .block_on(handle.compose(cable(
            "ambassador@paris",
            Classification::Confidential,
            &[],
            Precedence::Routine,
            "Weekly political summary",
        )))
        .unwrap();
    until_shown(&mut me, "Weekly political summary");
    let david_handle_cable = cable(
        "ambassador@paris",
        Classification::TopSecret,
        &[Caveat::Nodis],
        Precedence::Flash,
        "Drawdown ordered",
    );
    // Sent from David's window, so his Sent view follows it.
    sync(&world, &david);
    compose_in_window(&mut david, &world, david_handle_cable);
    until(&mut [&mut me, &mut david], "the FLASH to arrive", |h| {
        h.query_by_label_contains("Drawdown ordered").is_some()
    });
    let flash = me.get_by_label_contains("Drawdown ordered").rect();
    let routine = me.get_by_label_contains("Weekly political summary").rect();
    assert!(
        flash.top() < routine.top(),
        "the FLASH is listed above the ROUTINE cable"
    );
    assert!(
        !labels(&me, "Classification banner (top): TOP SECRET//NODIS").is_empty(),
        "the banner shows the highest marking on screen: {:?}",
        labels(&me, "Classification banner")
    );
    let row = labels(&me, "Drawdown ordered").remove(0);
    assert!(row.starts_with("FLASH"), "{row}");
    assert!(row.contains("ACK REQUIRED"), "{row}");

    // Read it: the pane says who signed it; then acknowledge it.
    me.get_by_label_contains("Drawdown ordered").click();
    until_shown(&mut me, "Signature verified: signed by david@paris");
    assert!(me.query_by_label_contains("Safety number:").is_some());
    me.check_accessibility();
    click(&mut me, "Acknowledge");
    until(&mut [&mut me], "the acknowledgement", |h| {
        h.query_by_label("Acknowledged").is_some()
    });

    // David sees it acknowledged in his window's Sent view, live.
    click(&mut david, "Sent (Ctrl+2)");
    until(
        &mut [&mut david, &mut me],
        "David's Sent view to say acknowledged",
        |h| h.query_by_label("ambassador@paris acknowledged").is_some(),
    );
    david.check_accessibility();
}

/// Composes `draft` in a window through its form: To, classification, precedence, subject.
fn compose_in_window(
    window: &mut egui_kittest::Harness<'static, valise_desktop::App>,
    _world: &World,
    draft: CableDraft,
) {
    click(window, "Compose (Ctrl+3)");
    type_into(window, "To (action)", &draft.action.join(", "));
    click(window, draft.classification.cable_name());
    click(window, draft.precedence.cable_name());
    for caveat in &draft.caveats {
        click(window, caveat.cable_name());
    }
    type_into(window, "Subject", &draft.subject);
    type_into(window, "Text", &draft.text);
    until_shown(window, "Ready:");
    click(window, "Seal and send");
    until_shown(window, "sealed and queued");
}

#[test]
fn a_secret_cable_to_a_confidential_colleague_is_refused_before_sealing() {
    let world = World::new();
    let _carol = world
        .runtime
        .block_on(world.network.enrol(&COLLEAGUES[CAROL]))
        .unwrap();
    let alice = world
        .runtime
        .block_on(world.network.enrol(&COLLEAGUES[ALICE]))
        .unwrap()
        .0;
    let mut me = world.window_for(&AMBASSADOR);
    until_shown(&mut me, "Online");

    click(&mut me, "Compose (Ctrl+3)");
    type_into(&mut me, "To (action)", "carol@paris");
    click(&mut me, "SECRET");
    type_into(&mut me, "Subject", "Sanctions list");
    until_shown(
        &mut me,
        "Cannot be sent: carol@paris is cleared CONFIDENTIAL only",
    );
    assert!(
        me.get_by_label("Seal and send")
            .accesskit_node()
            .is_disabled(),
        "nothing can be sealed while an addressee blocks the cable"
    );
    me.check_accessibility();
    let client = me.state().client().unwrap();
    let sent = world.runtime.block_on(client.sent()).unwrap();
    assert!(sent.is_empty(), "nothing was sealed or queued");

    // To Alice (SECRET) instead, with an attachment large enough to watch its progress.
    let file = world.file("annex.bin", 48 << 20);
    type_into(&mut me, "To (action)", "alice@paris");
    type_into(&mut me, "File to attach", &file.display().to_string());
    click(&mut me, "Attach");
    until_shown(
        &mut me,
        "Ready: it will be sealed for 1 device(s): alice@paris",
    );
    click(&mut me, "Seal and send");
    let mut seen = Vec::new();
    until(&mut [&mut me], "the cable to be in custody", |h| {
        seen.extend(
            common::every_label(h)
                .into_iter()
                .filter(|l| l.starts_with("Sealing") || l.starts_with("Uploading")),
        );
        h.query_by_label("alice@paris delivered").is_some()
            || h.query_by_label("alice@paris custody").is_some()
    });
    assert!(
        seen.iter()
            .any(|l| l.starts_with("Sealing") || l.starts_with("Uploading")),
        "a progress bar showed: {seen:?}"
    );
    let rows = world
        .runtime
        .block_on(valise_desktop::demo::wait_for_inbox(&alice, 1))
        .unwrap();
    assert_eq!(rows[0].subject, "Sanctions list");
}

#[test]
fn forwarding_a_nodis_cable_is_refused_and_the_wipe_leaves_nothing() {
    let world = World::new();
    let mut me = world.window_for(&AMBASSADOR);
    let david = world
        .runtime
        .block_on(world.network.enrol(&COLLEAGUES[DAVID]))
        .unwrap()
        .0;
    until_shown(&mut me, "Online");
    world
        .runtime
        .block_on(david.compose(cable(
            "ambassador@paris",
            Classification::Secret,
            &[Caveat::Nodis],
            Precedence::Immediate,
            "Succession planning",
        )))
        .unwrap();
    until_shown(&mut me, "Succession planning");
    me.get_by_label_contains("Succession planning").click();
    until_shown(&mut me, "Signature verified");
    click(&mut me, "Forward");
    until_shown(
        &mut me,
        "Refused: this cable is NODIS: it may not be forwarded",
    );
    assert!(
        me.query_by_label("New cable").is_none(),
        "no forward draft was opened"
    );

    // The wipe takes two deliberate steps.
    click(&mut me, "Keys and emergency (Ctrl+5)");
    click(&mut me, "Emergency wipe…");
    assert!(
        me.get_by_label("Erase this device now")
            .accesskit_node()
            .is_disabled()
    );
    type_into(&mut me, "Type WIPE to confirm", "WIPE");
    me.check_accessibility();
    click(&mut me, "Erase this device now");
    until(&mut [&mut me], "the enrolment screen", |h| {
        h.state().screen_name() == "enrol"
    });
    assert!(
        !valise_client::store::LocalStore::exists(&world.network.device_dir(AMBASSADOR.user)),
        "the store is gone from disk"
    );
    until_shown(&mut me, "This device was wiped");
}

#[test]
fn the_window_locks_itself_when_idle_and_the_client_drops_its_keys() {
    let world = World::new();
    let (handle, events) = world
        .runtime
        .block_on(world.network.enrol(&AMBASSADOR))
        .unwrap();
    let mut options = world.options(AMBASSADOR.user);
    options.lock_after = std::time::Duration::from_millis(1500);
    let app = valise_desktop::App::unlocked(
        options,
        world.runtime.handle().clone(),
        handle.clone(),
        events,
    );
    let mut me = common::harness(app);
    until_shown(&mut me, "Online");
    until(&mut [&mut me], "the idle lock", |h| {
        h.state().screen_name() == "unlock"
    });
    assert!(me.state().client().is_none(), "the window holds no client");
    until_shown(&mut me, "Locked after a time without use");
    // The client's task ends, and with it every key it held: it answers nothing more.
    let deadline = std::time::Instant::now() + common::GIVE_UP;
    while world.runtime.block_on(handle.inbox()).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the client never locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_contact_marked_verified_in_the_directory_shows_on_their_cables() {
    let world = World::new();
    let mut me = world.window_for(&AMBASSADOR);
    let david = world
        .runtime
        .block_on(world.network.enrol(&COLLEAGUES[DAVID]))
        .unwrap()
        .0;
    until_shown(&mut me, "Online");
    sync(&world, &me);
    click(&mut me, "Directory (Ctrl+4)");
    until_shown(&mut me, "Mark david@paris verified");
    me.check_accessibility();
    click(&mut me, "Mark david@paris verified");
    until_shown(&mut me, "verified in person");

    world.runtime.block_on(david.sync_now()).unwrap();
    world
        .runtime
        .block_on(david.compose(cable(
            "ambassador@paris",
            Classification::Secret,
            &[],
            Precedence::Routine,
            "Weekly note",
        )))
        .unwrap();
    click(&mut me, "Inbox (Ctrl+1)");
    until_shown(&mut me, "Weekly note");
    me.get_by_label_contains("Weekly note").click();
    until_shown(&mut me, "Sender verified in person");
}
