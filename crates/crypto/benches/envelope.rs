//! Envelope benchmarks (DESIGN §12): seal fan-out, open, body and attachment throughput against
//! ring's raw AES-256-GCM, and the X-Wing implementation comparison behind the KEM choice.
//!
//! Run: `cargo bench -p valise-crypto --bench envelope`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use valise_crypto::attachment::{self, AttachmentKey};
use valise_crypto::envelope::body::{self, ContentKey};
use valise_crypto::envelope::{new_cable_id, open, seal};
use valise_crypto::identity::IdentityKeyPair;
use valise_crypto::receive_key::{ReceiveKeyPair, VerifiedReceiveKey};
use valise_crypto::xwing::{XWingPublicKey, XWingSecretKey};
use valise_proto::v1;

const NOW: u64 = 1_795_000_000_000;
const DAY: u64 = 86_400_000;

struct Device {
    identity: IdentityKeyPair,
    key: ReceiveKeyPair,
    published: VerifiedReceiveKey,
}

fn devices(n: usize) -> Vec<Device> {
    (0..n)
        .map(|_| {
            let identity = IdentityKeyPair::generate().unwrap();
            let key = ReceiveKeyPair::generate(NOW - DAY, NOW + DAY).unwrap();
            let published = VerifiedReceiveKey::verify(
                &key.to_signed_record(&identity).unwrap(),
                identity.public(),
            )
            .unwrap();
            Device {
                identity,
                key,
                published,
            }
        })
        .collect()
}

fn header() -> v1::RoutingHeader {
    v1::RoutingHeader {
        cable_id: new_cable_id().unwrap().to_vec(),
        from: "alice@paris".into(),
        action_addressees: vec!["ALL@posts".into()],
        classification: v1::Classification::Secret as i32,
        precedence: v1::Precedence::Immediate as i32,
        created_at_ms: NOW,
        ..Default::default()
    }
}

fn body(len: usize) -> v1::CableBody {
    v1::CableBody {
        subject: "Circular".into(),
        text: "x".repeat(len),
        ..Default::default()
    }
}

fn fan_out(c: &mut Criterion) {
    let sender = IdentityKeyPair::generate().unwrap();
    let recipients = devices(1000);
    let keys: Vec<_> = recipients.iter().map(|d| d.published.clone()).collect();
    let body = body(64 * 1024);

    let mut group = c.benchmark_group("seal_64KiB");
    for n in [1usize, 10, 100, 1000] {
        if n >= 100 {
            group.sample_size(10);
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| seal(&sender, header(), &body, &keys[..n]).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open_64KiB");
    for n in [1usize, 1000] {
        let env = seal(&sender, header(), &body, &keys[..n]).unwrap();
        let me = &recipients[n - 1];
        let my_keys = std::slice::from_ref(&me.key);
        group.bench_with_input(BenchmarkId::new("recipients", n), &env, |b, env| {
            b.iter(|| open(env, sender.public(), &me.identity.device_id(), my_keys).unwrap())
        });
    }
    group.finish();
}

/// The body layer (encode + AES-256-GCM, `envelope::body::encrypt`) beside ring's raw
/// AES-256-GCM on a buffer that already holds the plaintext; then, for context, the other
/// per-byte costs of a cable: the SHA-256 its signature needs, a whole one-recipient seal, and
/// the attachment stream.
fn body_throughput(c: &mut Criterion) {
    let sender = IdentityKeyPair::generate().unwrap();
    let recipient = devices(1).remove(0);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let cek = ContentKey::generate().unwrap();
    let mut group = c.benchmark_group("body_encryption");
    for len in [64usize << 10, 1 << 20, 16 << 20] {
        if len >= 16 << 20 {
            group.sample_size(20);
        }
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0u8; len];
        group.bench_function(BenchmarkId::new("ring_aes256gcm_raw", len), |b| {
            b.iter(|| {
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from(&b"header"[..]),
                        &mut buf,
                    )
                    .unwrap();
                black_box(tag.as_ref()[0]);
            })
        });
        let cable = body(len);
        group.bench_function(BenchmarkId::new("valise_body_layer", len), |b| {
            b.iter(|| body::encrypt(&cek, b"header", &cable).unwrap())
        });
        group.bench_function(BenchmarkId::new("sha256_for_signature", len), |b| {
            b.iter(|| valise_crypto::sha256(black_box(&buf)))
        });
        let keys = [recipient.published.clone()];
        group.bench_function(BenchmarkId::new("valise_seal_1_recipient", len), |b| {
            b.iter(|| seal(&sender, header(), &cable, &keys).unwrap())
        });
        let plain = vec![0x5Au8; len];
        let mut out = Vec::with_capacity(attachment::ciphertext_len(len as u64) as usize);
        let akey = AttachmentKey::generate().unwrap();
        group.bench_function(BenchmarkId::new("valise_attachment_stream", len), |b| {
            b.iter(|| {
                out.clear();
                attachment::encrypt(&akey, b"ctx", plain.as_slice(), &mut out).unwrap()
            })
        });
    }
    group.finish();
}

/// The two X-Wing implementations considered, on the operation that dominates fan-out:
/// parse a recipient's public key and encapsulate to it.
fn kem_choice(c: &mut Criterion) {
    let sk = XWingSecretKey::generate().unwrap();
    let pk_bytes = sk.public_key().to_bytes();
    let mut group = c.benchmark_group("xwing_encapsulate");
    group.bench_function("libcrux_mlkem+x25519_dalek (chosen)", |b| {
        b.iter(|| {
            XWingPublicKey::from_slice(black_box(&pk_bytes))
                .unwrap()
                .encapsulate()
                .unwrap()
        })
    });
    group.bench_function("rustcrypto_x-wing_0.1", |b| {
        use x_wing::TryKeyInit;
        let randomness = [9u8; 64].into();
        b.iter(|| {
            x_wing::EncapsulationKey::new_from_slice(black_box(&pk_bytes))
                .unwrap()
                .encapsulate_deterministic(&randomness)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("xwing_decapsulate");
    let (ct, _) = sk.public_key().encapsulate().unwrap();
    group.bench_function("libcrux_mlkem+x25519_dalek (chosen)", |b| {
        b.iter(|| sk.decapsulate(black_box(&ct)).unwrap())
    });
    group.bench_function("rustcrypto_x-wing_0.1", |b| {
        use x_wing::Decapsulate;
        let seed: [u8; 32] = **sk.seed();
        let dk = x_wing::DecapsulationKey::from(seed);
        let ct = x_wing::Ciphertext::try_from(&ct[..]).unwrap();
        b.iter(|| dk.decapsulate(black_box(&ct)))
    });
    group.finish();
}

criterion_group!(benches, fan_out, body_throughput, kem_choice);
criterion_main!(benches);
