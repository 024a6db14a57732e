//! The inbox's frame time: one whole frame (layout and tessellation) of the inbox list with
//! 10,000 cables, beside the same frame with 100 as its baseline. The list lays out only the
//! rows in view, so the two should cost about the same; a list that laid out every row would
//! cost a hundred times more. Also: applying a filter typed over 10,000 cables (done once per
//! keystroke, not per frame).
//!
//! `cargo bench -p valise-desktop --bench inbox`

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use eframe::egui;
use valise_client::views::{InboxRow, Routing};
use valise_client::{Caveat, Classification, Precedence};
use valise_desktop::inbox::InboxList;

fn rows(n: usize) -> Vec<InboxRow> {
    let precedences = [
        Precedence::Flash,
        Precedence::Immediate,
        Precedence::Priority,
        Precedence::Routine,
    ];
    let classes = [
        Classification::Unclassified,
        Classification::Confidential,
        Classification::Secret,
        Classification::TopSecret,
    ];
    (0..n)
        .map(|i| {
            let classification = classes[i % 4];
            let caveats = if i % 7 == 0 {
                vec![Caveat::Nodis]
            } else {
                vec![]
            };
            let subject = format!("Cable number {i} on the fisheries talks");
            InboxRow {
                id: format!("{i:032x}"),
                from: format!("officer{}@paris", i % 40),
                search_text: format!("{subject} text of cable {i} prel").to_lowercase(),
                subject,
                routing: Routing {
                    marking: valise_client::present::marking_of(classification, &caveats),
                    classification,
                    caveats,
                    precedence: precedences[(i / 2500).min(3)],
                    niact: i % 11 == 0,
                    to: vec!["ambassador@paris".into()],
                    info: vec![],
                    created_at_ms: 1_790_000_000_000 + i as u64 * 1000,
                },
                received_at_ms: 1_790_000_000_000 + i as u64 * 1000,
                read: i % 3 == 0,
                ack_required: i % 11 == 0,
                acknowledged: false,
                info_only: false,
            }
        })
        .collect()
}

/// One frame of the list in a 1280×800 window, scrolled to the top, tessellated.
fn frame(ctx: &egui::Context, list: &mut InboxList) -> usize {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1280.0, 800.0),
        )),
        ..Default::default()
    };
    let output = ctx.run_ui(input, |ui| {
        egui::CentralPanel::default().show(ui, |ui| {
            let _ = list.show_list(ui);
        });
    });
    ctx.tessellate(output.shapes, output.pixels_per_point).len()
}

fn inbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("inbox frame");
    for n in [100, 10_000] {
        let ctx = egui::Context::default();
        let mut list = InboxList::new(rows(n));
        // The first frames load fonts and size the scroll area.
        for _ in 0..3 {
            frame(&ctx, &mut list);
        }
        group.bench_function(format!("{n} cables"), |b| b.iter(|| frame(&ctx, &mut list)));
    }
    group.finish();

    let mut list = InboxList::new(rows(10_000));
    c.bench_function("inbox filter over 10000 cables", |b| {
        b.iter(|| {
            list.set_filter("number 99");
            list.shown()
        })
    });
}

criterion_group!(benches, inbox);
criterion_main!(benches);
