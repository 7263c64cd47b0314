//! The sync core's failure detector, pre-vote and handover (issue #12), input by input over the
//! real repositories (an in-memory database), on a virtual clock.

use rms_domain::{DeviceId, Epoch, Role, Term};
use rms_sync::{ErrorCode, LogPosition, Message, PeerInfo, SyncNode, To};
use rms_transport::StoreAdapter;

use crate::fuzz::{core_with, now};

fn device(id: u16) -> DeviceId {
    DeviceId::new(id).expect("not zero")
}

fn peer(id: u16) -> PeerInfo {
    PeerInfo {
        device_id: device(id),
        name: format!("till {id}"),
        advertise: format!("http://127.0.0.1:{id}"),
        priority: 0,
    }
}

fn epoch_of(master: u16) -> Epoch {
    Epoch {
        term: Term(1),
        master_id: device(master),
        master_priority: 0,
    }
}

fn heartbeat(from: u16, role: Role, epoch: Epoch) -> Message {
    Message::Heartbeat {
        peer: peer(from),
        epoch: Some(epoch),
        role,
        log_head: 0,
        handing_over_to: None,
        log_chain: None,
    }
}

/// Master 2's heartbeat at `log_head`, naming a handover target or none.
fn master_heartbeat(epoch: Epoch, log_head: u64, handing_over_to: Option<DeviceId>) -> Message {
    Message::Heartbeat {
        peer: peer(2),
        epoch: Some(epoch),
        role: Role::Master,
        log_head,
        handing_over_to,
        log_chain: None,
    }
}

/// The heartbeat of device `from`, a client that knows no master yet.
fn hello(from: u16) -> Message {
    Message::Heartbeat {
        peer: peer(from),
        epoch: None,
        role: Role::Client,
        log_head: 0,
        handing_over_to: None,
        log_chain: None,
    }
}

/// Device 1, given peers, that heard device 2 once (so it is part of a store: a device that
/// never heard one is joining and never elects itself) and then nothing: after the master timeout
/// it is the master of its island.
fn island_master() -> SyncNode<StoreAdapter> {
    let mut node = core_with(false, |adapter| adapter);
    node.handle_message(device(2), hello(2), now(0))
        .expect("device 2 heard once");
    run_timers(&mut node, 0, 1_000);
    node
}

/// Device 1 as a client of master 2, with device 3 as another live client; heartbeats from both
/// every 100 ms until `until_ms`.
fn client_of_two(until_ms: u64) -> SyncNode<StoreAdapter> {
    let mut node = core_with(false, |adapter| adapter);
    let epoch = epoch_of(2);
    let announce = Message::MasterAnnounce {
        epoch,
        url: "http://127.0.0.1:2".into(),
    };
    node.handle_message(device(2), announce, now(0))
        .expect("announce");
    let mut t = 0;
    while t <= until_ms {
        node.handle_messages(
            [
                (device(2), heartbeat(2, Role::Master, epoch)),
                (device(3), heartbeat(3, Role::Client, epoch)),
            ],
            now(t),
        )
        .expect("heartbeats");
        if node.poll_timeout() <= t {
            node.handle_timeout(now(t)).expect("timers");
        }
        t += 100;
    }
    assert_eq!(node.master_id(), Some(device(2)));
    sent(&mut node);
    node
}

/// Every message the node wants to send, drained.
fn sent(node: &mut SyncNode<StoreAdapter>) -> Vec<(To, Message)> {
    rms_tests::drain("transmits", || node.poll_transmit())
        .into_iter()
        .map(|t| (t.to, t.message))
        .collect()
}

/// Runs the node's timers, with no input, from `from_ms` up to `until_ms`.
fn run_timers(node: &mut SyncNode<StoreAdapter>, from_ms: u64, until_ms: u64) {
    let mut t = from_ms;
    while t <= until_ms {
        if node.poll_timeout() <= t {
            node.handle_timeout(now(t)).expect("timers");
        }
        t += 10;
    }
}

fn pre_votes(messages: &[(To, Message)]) -> usize {
    messages
        .iter()
        .filter(|(_, m)| matches!(m, Message::PreVote { .. }))
        .count()
}

#[test]
fn time_a_client_did_not_run_does_not_count_against_its_master() {
    // A client stopped for 2.5 s (four master timeouts) wakes up with every deadline passed: it
    // neither loses its master nor asks anybody, and the heartbeat waiting for it keeps it
    // following.
    let mut node = client_of_two(500);
    node.handle_timeout(now(3_000))
        .expect("the first timer after the pause");
    let after_pause = sent(&mut node);
    assert_eq!(pre_votes(&after_pause), 0, "{after_pause:?}");
    assert_eq!(node.master_id(), Some(device(2)));
    node.handle_message(
        device(2),
        heartbeat(2, Role::Master, epoch_of(2)),
        now(3_001),
    )
    .expect("the heartbeat that waited");
    run_timers(&mut node, 3_001, 3_500);
    assert_eq!(node.master_id(), Some(device(2)), "heard 500 ms ago: alive");
    // Silence while running is a failure again: after the master timeout it asks its peers.
    run_timers(&mut node, 3_500, 3_700);
    assert_eq!(node.master_id(), None);
    assert_eq!(pre_votes(&sent(&mut node)), 1, "one pre-vote, to all peers");
}

#[test]
fn a_peer_that_still_hears_the_master_stops_the_election() {
    // Device 1 stops hearing master 2 (its link is down); device 3 still hears it and says so:
    // no election, no new epoch; device 1 asks again once 3 would have timed out itself.
    let mut node = client_of_two(500);
    let epoch = epoch_of(2);
    let mut t = 600;
    while node.master_id().is_some() {
        assert!(
            t < 600 + 20 * 600,
            "device 1 still follows master 2 at {t} ms, 20 master timeouts after it last heard it"
        );
        node.handle_message(device(3), heartbeat(3, Role::Client, epoch), now(t))
            .expect("device 3 lives");
        node.handle_timeout(now(t)).expect("timers");
        t += 100;
    }
    let asked = sent(&mut node);
    assert_eq!(pre_votes(&asked), 1, "{asked:?}");
    let refusal = Message::PreVoteReply {
        epoch: Some(epoch),
        master_heard_ms_ago: Some(40),
        position: LogPosition {
            head_epoch: None,
            log_head: 0,
        },
        accepted_unlogged: Vec::new(),
    };
    node.handle_message(device(3), refusal, now(t))
        .expect("refusal");
    // Device 3 lives on (it hears the master, device 1 does not).
    let alive_until = |node: &mut SyncNode<StoreAdapter>, from_ms: u64, until_ms: u64| {
        let mut at = from_ms;
        while at <= until_ms {
            if at.is_multiple_of(100) {
                node.handle_message(device(3), heartbeat(3, Role::Client, epoch), now(at))
                    .expect("device 3 lives");
            }
            if node.poll_timeout() <= at {
                node.handle_timeout(now(at)).expect("timers");
            }
            at += 10;
        }
    };
    alive_until(&mut node, t, t + 500);
    let meanwhile = sent(&mut node);
    assert_eq!(
        pre_votes(&meanwhile),
        0,
        "not asked again while 3 hears the master"
    );
    assert!(
        !meanwhile
            .iter()
            .any(|(_, m)| matches!(m, Message::MasterAnnounce { .. })),
        "nobody deposes a master that device 3 hears: {meanwhile:?}"
    );
    assert_eq!(node.role(), Role::Client);
    assert_eq!(node.epoch(), Some(epoch), "no new term");
    alive_until(&mut node, t + 510, t + 600);
    assert_eq!(
        pre_votes(&sent(&mut node)),
        1,
        "asked again when 3 would have timed out (it heard the master 40 ms before answering)"
    );
}

#[test]
fn a_device_that_reaches_nobody_leads_its_island() {
    // Master 2 and device 3 both go silent: the pre-vote awaits nobody alive and device 1
    // becomes master of its island in a new term.
    let mut node = client_of_two(500);
    run_timers(&mut node, 600, 1_500);
    assert_eq!(node.role(), Role::Master);
    assert_eq!(
        node.epoch().map(|e| (e.term, e.master_id)),
        Some((Term(2), device(1)))
    );
}

#[test]
fn a_master_handing_over_decides_nothing_until_the_target_took_over_or_time_ran_out() {
    // While it hands over, a master refuses pushes (`handing_over`) and records local writes as
    // pending; when the target does not take over within two master timeouts it goes on.
    let mut node = island_master();
    assert_eq!(node.role(), Role::Master, "alone: master of its island");
    let epoch = node.epoch().expect("an epoch");
    node.handle_message(device(2), heartbeat(2, Role::Client, epoch), now(1_000))
        .expect("device 2 lives");
    sent(&mut node);
    node.request_handover(device(2), now(1_000))
        .expect("a live target");
    assert_eq!(node.local_write_role(), Role::Client, "local writes wait");
    let push = Message::Push {
        epoch: Some(epoch),
        events: Vec::new(),
        head: None,
    };
    node.handle_message(device(2), push, now(1_010))
        .expect("push");
    let answers = sent(&mut node);
    assert!(
        answers.iter().any(|(to, m)| *to == To::Device(device(2))
            && matches!(
                m,
                Message::Error {
                    code: ErrorCode::HandingOver,
                    ..
                }
            )),
        "{answers:?}"
    );
    run_timers(&mut node, 1_010, 2_210);
    assert_eq!(node.local_write_role(), Role::Master, "the master goes on");
}

#[test]
fn a_handover_that_arrives_after_the_master_went_on_is_not_carried_out() {
    // Found by the simulator (seed 2782): a handover request and the heartbeats that named the
    // target arrived late, after newer messages of the same master that showed its log past the
    // handover's head (the master had given up waiting and decided more). The target took over,
    // and two masters decided the same units. A master handing over decides nothing past the
    // handover's head, so any sign of a further head proves the handover over.
    let mut node = client_of_two(1_000);
    let epoch = epoch_of(2);
    synced_at_zero(&mut node, 1_010);
    let went_on = master_heartbeat(epoch, 5, None);
    node.handle_message(device(2), went_on, now(1_020))
        .expect("the master's heartbeat at head 5");
    let late = [
        (
            device(2),
            Message::Handover {
                epoch,
                target: device(1),
                log_head: 0,
            },
        ),
        (device(2), master_heartbeat(epoch, 0, Some(device(1)))),
    ];
    node.handle_messages(late, now(1_030))
        .expect("the late handover");
    run_timers(&mut node, 1_030, 1_300);
    let announced = sent(&mut node)
        .iter()
        .any(|(_, m)| matches!(m, Message::MasterAnnounce { .. }));
    assert!(!announced, "no take-over on a stale handover");
    assert_eq!(node.role(), Role::Client);
    assert_eq!(node.master_id(), Some(device(2)));
}

/// The pull answer that tells a client of master 2 at head 0 that the logs agree.
fn synced_at_zero(node: &mut SyncNode<StoreAdapter>, at_ms: u64) {
    let answer = Message::Events {
        epoch: epoch_of(2),
        since: 0,
        since_epoch: None,
        entries: Vec::new(),
        log_head: 0,
        truncate_to: None,
    };
    node.handle_message(device(2), answer, now(at_ms))
        .expect("the pull answer");
    assert!(node.in_sync(), "the logs agree");
}

fn announced(messages: &[(To, Message)]) -> bool {
    messages
        .iter()
        .any(|(_, m)| matches!(m, Message::MasterAnnounce { .. }))
}

#[test]
fn a_handover_read_after_the_master_gave_up_is_never_carried_out() {
    // Found by the simulator (issue #26, seed 1632): the target was paused when its master asked
    // it to take over; the master gave up at its deadline and decided two more entries; the
    // target, resumed, read the request and the heartbeats that named it before anything newer,
    // and took over at the old head, so that two masters decided the same units. The pause
    // forgiveness made the 840 ms old request look fresh: no local time tells a stale request
    // from a live one. Only the master's grant, which a master that gave up never sends, does.
    let mut node = client_of_two(1_000);
    let epoch = epoch_of(2);
    synced_at_zero(&mut node, 1_010);
    // The device did not run from 1 010 to 1 900: what waited is read together.
    let waited = [
        (device(2), master_heartbeat(epoch, 0, Some(device(1)))),
        (
            device(2),
            Message::Handover {
                epoch,
                target: device(1),
                log_head: 0,
            },
        ),
        (device(2), master_heartbeat(epoch, 0, Some(device(1)))),
    ];
    node.handle_messages(waited, now(1_900))
        .expect("what waited");
    run_timers(&mut node, 1_900, 2_400);
    let out = sent(&mut node);
    assert!(!announced(&out), "no take-over without a grant: {out:?}");
    assert!(
        out.iter().any(|(to, m)| *to == To::Device(device(2))
            && matches!(m, Message::HandoverReady { log_head: 0, .. })),
        "it asks its master for the role instead: {out:?}"
    );
    assert_eq!(node.role(), Role::Client);
    assert_eq!(node.epoch(), Some(epoch), "no new term");
}

#[test]
fn a_master_grants_the_role_only_while_frozen_for_that_target_and_decides_nothing_once_it_has() {
    let mut node = island_master();
    assert_eq!(node.role(), Role::Master, "alone: master of its island");
    let epoch = node.epoch().expect("an epoch");
    let head = node.log_head();
    node.handle_message(device(2), heartbeat(2, Role::Client, epoch), now(1_000))
        .expect("device 2 lives");
    node.handle_message(device(3), heartbeat(3, Role::Client, epoch), now(1_000))
        .expect("device 3 lives");
    sent(&mut node);
    node.request_handover(device(2), now(1_000))
        .expect("a live target");
    assert!(
        node.request_handover(device(3), now(1_005)).is_err(),
        "one handover at a time"
    );
    let grant = Message::HandoverGranted {
        epoch,
        log_head: head,
    };
    let granted = |out: &[(To, Message)]| out.contains(&(To::Device(device(2)), grant.clone()));
    let ready = |log_head| Message::HandoverReady { epoch, log_head };
    node.handle_message(device(3), ready(head), now(1_010))
        .expect("another device's ready");
    node.handle_message(device(2), ready(head + 1), now(1_020))
        .expect("the target at another head");
    let out = sent(&mut node);
    assert!(
        !out.iter()
            .any(|(_, m)| matches!(m, Message::HandoverGranted { .. })),
        "neither is granted: {out:?}"
    );
    node.handle_message(device(2), ready(head), now(1_030))
        .expect("the target caught up");
    assert!(granted(&sent(&mut node)), "granted");
    node.handle_message(device(2), ready(head), now(1_040))
        .expect("the same ready again: the grant was lost");
    assert!(granted(&sent(&mut node)), "granted again");
    // Until it steps down it decides nothing, and it still answers as the master, so that no
    // device elects a third master while the target takes over.
    assert_eq!(node.local_write_role(), Role::Client);
    let push = Message::Push {
        epoch: Some(epoch),
        events: Vec::new(),
        head: None,
    };
    node.handle_message(device(3), push, now(1_050))
        .expect("push");
    let question = Message::PreVote {
        epoch: Some(epoch),
        log_head: head,
    };
    node.handle_message(device(3), question, now(1_060))
        .expect("pre-vote");
    let answers = sent(&mut node);
    assert!(
        answers.iter().any(|(_, m)| matches!(
            m,
            Message::Error {
                code: ErrorCode::HandingOver,
                ..
            }
        )),
        "{answers:?}"
    );
    assert!(
        answers.iter().any(|(_, m)| matches!(
            m,
            Message::PreVoteReply {
                master_heard_ms_ago: Some(0),
                ..
            }
        )),
        "{answers:?}"
    );
    // The target's epoch not heard by the deadline: it steps down, it never goes on.
    run_timers(&mut node, 1_060, 2_300);
    assert_eq!(node.role(), Role::Client, "stepped down at its deadline");
    assert_eq!(node.local_write_role(), Role::Client);
}

#[test]
fn a_master_that_gave_up_its_handover_grants_nothing() {
    let mut node = island_master();
    let epoch = node.epoch().expect("an epoch");
    let head = node.log_head();
    node.handle_message(device(2), heartbeat(2, Role::Client, epoch), now(1_000))
        .expect("device 2 lives");
    node.request_handover(device(2), now(1_000))
        .expect("a live target");
    run_timers(&mut node, 1_000, 2_210);
    assert_eq!(node.local_write_role(), Role::Master, "it gave up");
    sent(&mut node);
    let late = Message::HandoverReady {
        epoch,
        log_head: head,
    };
    node.handle_message(device(2), late, now(2_220))
        .expect("a late ready");
    let out = sent(&mut node);
    assert!(
        !out.iter()
            .any(|(_, m)| matches!(m, Message::HandoverGranted { .. })),
        "{out:?}"
    );
    assert_eq!(node.role(), Role::Master);
}

#[test]
fn a_target_takes_over_on_the_grant_unless_it_told_a_pre_vote_it_has_no_master() {
    let epoch = epoch_of(2);
    let handover = Message::Handover {
        epoch,
        target: device(1),
        log_head: 0,
    };
    let grant = Message::HandoverGranted { epoch, log_head: 0 };
    // Granted: taken at the next tick, in a new term.
    let mut node = client_of_two(1_000);
    synced_at_zero(&mut node, 1_010);
    node.handle_message(device(2), handover.clone(), now(1_020))
        .expect("handover");
    run_timers(&mut node, 1_020, 1_030);
    node.handle_message(device(2), grant.clone(), now(1_040))
        .expect("grant");
    run_timers(&mut node, 1_040, 1_050);
    assert_eq!(node.role(), Role::Master);
    assert_eq!(
        node.epoch().map(|e| (e.term, e.master_id)),
        Some((Term(2), device(1)))
    );
    assert!(announced(&sent(&mut node)));
    // Told device 3's pre-vote that it hears no master (it was never registered): device 3 may
    // elect another now, so a grant read afterwards is not acted on.
    let mut node = client_of_two(1_000);
    synced_at_zero(&mut node, 1_010);
    node.handle_message(device(2), handover, now(1_020))
        .expect("handover");
    run_timers(&mut node, 1_020, 1_030);
    let question = Message::PreVote {
        epoch: Some(epoch),
        log_head: 0,
    };
    node.handle_message(device(3), question, now(1_035))
        .expect("pre-vote");
    node.handle_message(device(2), grant, now(1_040))
        .expect("grant");
    run_timers(&mut node, 1_040, 1_200);
    assert!(!announced(&sent(&mut node)));
    assert_eq!(node.role(), Role::Client);
    assert_eq!(node.epoch(), Some(epoch));
}

#[test]
fn a_more_complete_log_wins_even_from_a_peer_whose_priority_was_never_heard() {
    // Found by the simulator (issue #26, seed 4135): a till restarted without its roster while
    // its master was paused; the master, resumed and stepped down, answered the till's pre-vote
    // with a longer log before any of its heartbeats was read. A peer of unknown priority could
    // not be chosen, so the till elected itself, undid the master's last entries and forced a
    // sale they had accepted. The most complete log wins; an unknown priority only ranks last.
    let mut node = core_with(false, |adapter| adapter);
    let epoch = epoch_of(2);
    let announce = Message::MasterAnnounce {
        epoch,
        url: "http://127.0.0.1:2".into(),
    };
    node.handle_message(device(2), announce, now(0))
        .expect("announce");
    run_timers(&mut node, 0, 700);
    assert_eq!(node.master_id(), None, "it lost its master");
    assert_eq!(pre_votes(&sent(&mut node)), 1);
    let answer = Message::PreVoteReply {
        epoch: Some(epoch),
        master_heard_ms_ago: None,
        position: LogPosition {
            head_epoch: Some(epoch),
            log_head: 5,
        },
        accepted_unlogged: Vec::new(),
    };
    node.handle_message(device(2), answer, now(710))
        .expect("the answer");
    run_timers(&mut node, 710, 1_000);
    assert!(!announced(&sent(&mut node)), "device 2's log is longer");
    assert_eq!(node.role(), Role::Client);
}

#[test]
fn a_device_given_peers_that_never_heard_one_never_elects_itself() {
    // Issue #27: an unpaired device (nothing admits its links) waited three master timeouts and
    // made itself the master of an island of one, a store of its own with an empty catalogue.
    let mut node = core_with(false, |adapter| adapter);
    run_timers(&mut node, 0, 30_000);
    assert!(node.joining());
    assert_eq!(node.epoch(), None, "no election in 50 master timeouts");
    assert_eq!(node.role(), Role::Client);
    assert!(
        !sent(&mut node)
            .iter()
            .any(|(_, m)| matches!(m, Message::PreVote { .. } | Message::MasterAnnounce { .. })),
        "it asked nobody to elect it"
    );
    // Once it hears a device it is part of a store: it follows the master it hears.
    let epoch = epoch_of(2);
    node.handle_message(device(2), master_heartbeat(epoch, 0, None), now(30_000))
        .expect("master 2 heard");
    assert!(!node.joining());
    assert_eq!(node.master_id(), Some(device(2)));
}

#[test]
fn a_device_its_store_does_not_admit_holds_no_election_until_it_hears_a_peer() {
    // Issue #27: a till restored without its identity files has a new certificate; the store
    // refuses it, and it made itself the master of an island whose newer term would win.
    let mut node = core_with(false, |adapter| adapter);
    node.handle_message(device(2), hello(2), now(0))
        .expect("device 2 heard once");
    node.not_admitted();
    assert!(node.joining());
    run_timers(&mut node, 0, 30_000);
    assert_eq!(node.epoch(), None, "no election while not admitted");
    // Paired, it hears the master and follows it: no longer joining.
    let epoch = epoch_of(2);
    node.handle_message(device(2), master_heartbeat(epoch, 0, None), now(30_000))
        .expect("master 2 heard");
    assert!(!node.joining());
    assert_eq!(node.master_id(), Some(device(2)));
}

/// Device 1 over a database that began an incarnation (a replaced or restored till) at the
/// virtual clock's start, given peers.
fn new_incarnation() -> SyncNode<StoreAdapter> {
    let store =
        std::sync::Arc::new(rms_storage::Store::open_in_memory(device(1)).expect("database"));
    rms_storage::incarnation::start(&store, now(0).wall_ms, true)
        .expect("begins")
        .expect("an incarnation: a fresh database given peers");
    let config = crate::fuzz::config(true);
    SyncNode::new(config, StoreAdapter::without_keys(store), now(0)).expect("starts")
}

/// A pre-vote answer from a device that hears no master, with an empty log.
fn no_master_here(epoch: Epoch) -> Message {
    Message::PreVoteReply {
        epoch: Some(epoch),
        master_heard_ms_ago: None,
        position: LogPosition {
            head_epoch: None,
            log_head: 0,
        },
        accepted_unlogged: Vec::new(),
    }
}

#[test]
fn a_new_incarnation_leads_only_past_its_term_floor_and_once_every_device_it_knows_answered() {
    // Issue #27, simulator seeds 291 and 508: a restored or replaced till that had not caught up
    // with its store led an island (its copy's log, or none) and, its term being newer, made
    // the store's devices truncate theirs; a restored one led an epoch its predecessor had led.
    let mut node = new_incarnation();
    let epoch = epoch_of(2);
    node.handle_message(device(2), master_heartbeat(epoch, 5, None), now(0))
        .expect("master 2 heard");
    node.handle_message(device(3), heartbeat(3, Role::Client, epoch), now(0))
        .expect("client 3 heard");
    assert_eq!(node.master_id(), Some(device(2)));
    // The master goes silent before this device caught up; device 3 answers nothing.
    run_timers(&mut node, 0, 30_000);
    assert_eq!(
        node.role(),
        Role::Client,
        "no island of a device behind its store"
    );
    assert!(pre_votes(&sent(&mut node)) > 0, "it asked");
    // Every device it knows answers: it may lead, in a term past every term its id led before.
    let mut t = 30_000;
    while node.role() != Role::Master && t < 40_000 {
        if node.poll_timeout() <= t {
            node.handle_timeout(now(t)).expect("timers");
        }
        if pre_votes(&sent(&mut node)) > 0 {
            for from in [2, 3] {
                node.handle_message(device(from), no_master_here(epoch), now(t))
                    .expect("answer");
            }
        }
        t += 10;
    }
    assert_eq!(node.role(), Role::Master, "everyone it knows answered");
    let term = node.epoch().expect("its epoch").term;
    assert!(term.0 >= now(0).wall_ms, "term {term:?} below the floor");
}

#[test]
fn a_revoked_device_steps_down_and_never_leads_or_answers_again() {
    // Issue #27, simulator seed 649: a revoked device led an island, and a fresh replacement that
    // had not heard of the revocation followed it and carried its epoch into the store.
    let mut node = island_master();
    assert_eq!(node.role(), Role::Master);
    sent(&mut node);
    node.revoked(now(1_000)).expect("steps down");
    assert_eq!(node.role(), Role::Client);
    assert!(node.is_revoked());
    let asked = Message::PreVote {
        epoch: node.epoch(),
        log_head: 0,
    };
    node.handle_message(device(2), asked, now(1_010))
        .expect("a pre-vote");
    run_timers(&mut node, 1_010, 30_000);
    let out = sent(&mut node);
    assert_eq!(node.role(), Role::Client, "never leads again");
    assert!(
        !out.iter().any(|(_, m)| matches!(
            m,
            Message::PreVote { .. } | Message::PreVoteReply { .. } | Message::MasterAnnounce { .. }
        )),
        "it neither holds nor answers an election"
    );
}
