//! An insider and a bystander against a real store (issue #29): each finding of the attack on a
//! paired store as a test, run the way the attacker ran it, through real processes on loopback.
//! Each test failed on the code before the issue and passes after.

mod hq_epoch;
