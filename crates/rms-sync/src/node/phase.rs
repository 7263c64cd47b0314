//! The [`Phase`]: where a device stands (it leads, it follows a master it hears, or it has none),
//! and what each phase knows, as plain data: [`Leading`] with its [`HandingOver`], [`Following`]
//! with its [`TakeOver`], [`Masterless`] with its pre-vote round and the winner it waits for.
//!
//! **Dependencies point one way:** this module is the leaf the role modules share. `election.rs`,
//! `client.rs`, `master.rs`, `handover.rs` and `timer.rs` import it; it imports none of them (only
//! `crate::pre_vote` for the round a masterless device runs). A role module changes a phase's
//! state; this module holds it, and only the rules that touch nothing else (constructors, the
//! shift of a pause).
//!
//! Who writes what: `election.rs` switches the phase and runs the masterless state, `client.rs`
//! the following state, `master.rs` the leading state, `handover.rs` the [`HandingOver`] and
//! [`TakeOver`] parts; `timer.rs` reads the deadlines.

use rms_domain::{DeviceId, Role};

use crate::pre_vote::PreVote;

/// Where a device stands: it leads, it follows a master it hears, or it has none.
#[derive(Debug)]
pub enum Phase {
    Master(Leading),
    Following(Following),
    Masterless(Masterless),
}

impl Phase {
    /// A device without a master since `since_ms`.
    pub fn masterless(since_ms: u64) -> Phase {
        Phase::Masterless(Masterless {
            since_ms,
            waiting: None,
            pre_vote: None,
        })
    }

    pub fn role(&self) -> Role {
        match self {
            Phase::Master(_) => Role::Master,
            Phase::Following(_) | Phase::Masterless(_) => Role::Client,
        }
    }
}

// ----- master -----

/// What a master knows as master.
#[derive(Debug)]
pub struct Leading {
    /// A handover in progress.
    pub handing_over: Option<HandingOver>,
    /// Entries up to here were broadcast (as `sync_update`, or as a `critical_event` that
    /// continued the broadcasts).
    pub broadcast_head: u64,
    /// Eager sync: when the entries after `broadcast_head` are to be broadcast.
    pub broadcast_due_ms: Option<u64>,
    /// When the last `sync_update` went.
    pub broadcast_last_ms: u64,
}

impl Leading {
    /// A master whose log (up to `log_head`) is known to every follower that pulls.
    pub fn new(log_head: u64) -> Leading {
        Leading {
            handing_over: None,
            broadcast_head: log_head,
            broadcast_due_ms: None,
            broadcast_last_ms: 0,
        }
    }
}

/// A master handing its role over: it decides nothing new until the target took over (so the
/// target's log is the whole log) or the deadline passed (then it goes on as master).
#[derive(Debug, Clone, Copy)]
pub struct HandingOver {
    pub target: DeviceId,
    pub deadline_ms: u64,
    /// The role was granted to the target at this head: this master decides nothing in its
    /// epoch again, and at the deadline it steps down instead of going on.
    pub granted: Option<u64>,
}

// ----- client -----

/// A client's view of the master it follows.
#[derive(Debug, Clone, Default)]
pub struct Following {
    /// Monotonic time the master was last heard from.
    pub heard_ms: u64,
    pub registered: bool,
    /// The logs were found to agree up to our head (a pull answered without truncation).
    pub synced: bool,
    pub master_log_head: u64,
    /// The furthest this master's log was ever heard to reach (heartbeats, broadcasts, pull
    /// answers). Never goes back, in whatever order messages arrive: a handover to a head behind
    /// it is stale (a master handing over decides nothing past the handover's head).
    pub master_head_seen: u64,
    pub push_sent_ms: Option<u64>,
    pub push_again: bool,
    pub pull_sent_ms: Option<u64>,
    /// Handover asked us to take over once our head reaches a position, until a deadline.
    pub take_over_at: Option<TakeOver>,
    /// `--reclaim`: when this device last asked the master to hand the role back.
    pub reclaim_asked_ms: Option<u64>,
}

impl Following {
    /// Following a master just heard from.
    pub fn new(heard_ms: u64) -> Following {
        Following {
            heard_ms,
            ..Following::default()
        }
    }

    /// See `SyncNode::forgive_pause`: what was heard or sent before the gap moves by it.
    pub fn forgive_pause(&mut self, gap_started_ms: u64, late_ms: u64) {
        let shift = |at: &mut u64| {
            if *at <= gap_started_ms {
                *at += late_ms;
            }
        };
        shift(&mut self.heard_ms);
        for sent in [&mut self.push_sent_ms, &mut self.pull_sent_ms]
            .into_iter()
            .flatten()
        {
            shift(sent);
        }
    }
}

/// A handover this device was asked to carry out, at `log_head`, until `until_ms`.
#[derive(Debug, Clone, Copy)]
pub struct TakeOver {
    pub log_head: u64,
    pub until_ms: u64,
    /// When this device last said `handover_ready` (said again each heartbeat interval until the
    /// grant comes: a lost message is not a refusal).
    pub ready_sent_ms: Option<u64>,
    /// When the master's grant was read: the role is taken at the tick due then.
    pub granted_ms: Option<u64>,
}

impl TakeOver {
    /// The tick at which a granted handover is carried out.
    pub fn granted_ms(&self) -> Option<u64> {
        self.granted_ms
    }
}

// ----- masterless -----

/// A device that follows no master: it waits for one, runs a pre-vote, or waits for the winner
/// of the election it held.
#[derive(Debug)]
pub struct Masterless {
    /// When this device lost (or started without) a master.
    pub since_ms: u64,
    pub waiting: Option<Waiting>,
    /// The pre-vote round this device runs before it holds an election.
    pub pre_vote: Option<PreVote>,
}

/// An election this device held that a better-ranked device is to win.
#[derive(Debug, Clone, Copy)]
pub struct Waiting {
    pub expected: DeviceId,
    pub deadline_ms: u64,
}

impl Masterless {
    /// See `SyncNode::forgive_pause`. A pre-vote open across the gap counts answers from before
    /// it: the store may have a master by now (its announce is among the inputs that waited).
    /// It is dropped, and asked again a master timeout from now if no master is heard meanwhile.
    pub fn forgive_pause(&mut self, gap_started_ms: u64, late_ms: u64, now_ms: u64) {
        if self.since_ms <= gap_started_ms {
            self.since_ms += late_ms;
        }
        if let Some(waiting) = self.waiting.as_mut() {
            waiting.deadline_ms += late_ms;
        }
        if self.pre_vote.take().is_some() {
            self.since_ms = now_ms;
        }
    }
}
