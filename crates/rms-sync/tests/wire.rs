//! The wire shape of the sync messages (docs/API.md documents it) and the seeded RNG.

use rms_domain::{DeviceId, Epoch, Term};
use rms_sync::{ErrorCode, Message, PeerInfo, Rng};

#[test]
fn messages_are_type_tagged_json() {
    let epoch = Epoch {
        term: Term(3),
        master_id: DeviceId::new(2).unwrap(),
        master_priority: 0,
    };
    let message = Message::Heartbeat {
        peer: PeerInfo {
            device_id: DeviceId::new(5).unwrap(),
            name: "till 5".into(),
            advertise: "http://127.0.0.1:7001".into(),
            priority: 0,
        },
        epoch: Some(epoch),
        role: rms_domain::Role::Client,
        log_head: 42,
        handing_over_to: None,
        log_chain: None,
    };
    let json = serde_json::to_value(&message).unwrap();
    assert_eq!(json["type"], "heartbeat");
    assert_eq!(json["epoch"]["term"], 3);
    assert_eq!(json["role"], "client");
    assert_eq!(serde_json::from_value::<Message>(json).unwrap(), message);
    assert!(
        !serde_json::to_string(&message)
            .unwrap()
            .contains("log_chain"),
        "a heartbeat without a signed log head does not name one"
    );
    // A master's heartbeat carrying its signed log head (issue #17) round-trips.
    let Message::Heartbeat { peer, .. } = message else {
        unreachable!()
    };
    let signed = Message::Heartbeat {
        peer,
        epoch: Some(epoch),
        role: rms_domain::Role::Master,
        log_head: 42,
        handing_over_to: None,
        log_chain: Some(rms_domain::PushHead {
            statement: "{\"log_head\":{}}".into(),
            key: "04ab".into(),
            certificate: "30".into(),
            signature: "cd".into(),
        }),
    };
    let json = serde_json::to_value(&signed).unwrap();
    assert_eq!(json["log_chain"]["key"], "04ab");
    assert_eq!(serde_json::from_value::<Message>(json).unwrap(), signed);
    let unknown =
        serde_json::json!({"type": "pull", "epoch": null, "since": 0, "since_epoch": null, "x": 1});
    assert!(
        serde_json::from_value::<Message>(unknown).is_err(),
        "unknown fields are refused"
    );
}

#[test]
fn the_rng_replays_from_its_seed() {
    let draw = |seed| {
        let mut rng = Rng::new(seed);
        (0..5).map(|_| rng.below(1000)).collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
    let mut rng = Rng::new(1);
    assert!((0..1000).all(|_| (900..=1100).contains(&rng.jitter(1000, 10))));
}

#[test]
fn error_codes_read_as_variants_and_unknown_ones_survive() {
    // Proves: `error.code` stays a plain string on the wire, the known codes read as variants,
    // and a code of a newer peer is kept as it was sent, not refused.
    for (text, code) in [
        ("stale_term", ErrorCode::StaleTerm),
        ("not_master", ErrorCode::NotMaster),
        ("handing_over", ErrorCode::HandingOver),
        ("refused", ErrorCode::Refused),
        ("quota_exceeded", ErrorCode::Other("quota_exceeded".into())),
    ] {
        let json = format!(r#"{{"type":"error","epoch":null,"code":"{text}","message":"m"}}"#);
        let message: Message = serde_json::from_str(&json).expect("an error message decodes");
        let Message::Error { code: read, .. } = &message else {
            panic!("not an error: {message:?}");
        };
        assert_eq!(*read, code);
        let again = serde_json::to_value(&message).expect("encodes");
        assert_eq!(again["code"], text, "the wire form is unchanged");
    }
}
