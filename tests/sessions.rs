//! The refresh-family state machine and the account document, with a frozen clock: every
//! transition, the grace boundary ± 1 s, grandparent reuse, idle and absolute expiry, revocation,
//! throttling, and a randomized sequence test of the invariants.

use gatehouse::account::family::simulation::Simulator;
use gatehouse::account::family::{hash, Family, Lifetimes, Outcome, Refusal, RevokeReason, Secret};
use gatehouse::account::state::{Account, AccountDoc, RefreshResult, Throttle, FREE_FAILURES, MAX_SESSIONS};
use rand::{Rng, SeedableRng};

const T0: i64 = 1_767_225_600;
const LIFE: Lifetimes = Lifetimes { absolute: 30 * 86_400, idle: 14 * 86_400, grace: 10 };
const COVER: i64 = 930;

fn secret(n: u8) -> Secret {
    [n; 32]
}

fn family() -> Family {
    Family::new("sid-1".into(), secret(0xAA), &secret(1), T0)
}

/// Presents `token`, and on a rotation commits it with a made-up access token; returns the next token.
fn rotate(f: &mut Family, token: &Secret, now: i64) -> Secret {
    match f.present(token, now, &LIFE) {
        Outcome::Rotate { next } => {
            f.commit_rotation(token, &next, format!("access@{now}"), now + 900, now);
            next
        }
        other => panic!("expected a rotation at {now}, got {other:?}"),
    }
}

#[test]
fn rotation_retires_the_presented_token() {
    let mut f = family();
    let t1 = secret(1);
    let t2 = rotate(&mut f, &t1, T0 + 60);
    assert_ne!(t2, t1);
    assert_eq!(f.live, hash(&t2));
    assert_eq!(f.generation, 1);
    let t3 = rotate(&mut f, &t2, T0 + 120);
    assert_eq!(f.generation, 2);
    assert_eq!(f.last_used, T0 + 120);
    assert_ne!(t3, t2);
}

#[test]
fn replay_within_grace_returns_the_same_pair_and_changes_nothing() {
    let mut f = family();
    let t1 = secret(1);
    let t2 = rotate(&mut f, &t1, T0 + 100);
    let snapshot = f.clone();
    for dt in [0, 1, 5, LIFE.grace] {
        match f.present(&t1, T0 + 100 + dt, &LIFE) {
            Outcome::Replay { next, access_token, access_exp } => {
                assert_eq!(next, t2, "the very successor");
                assert_eq!(access_token, "access@1767225700");
                assert_eq!(access_exp, T0 + 100 + 900);
            }
            other => panic!("dt {dt}: {other:?}"),
        }
        assert_eq!(f, snapshot, "a replay writes nothing");
    }
    // And the successor is still the live token.
    assert!(matches!(f.present(&t2, T0 + 105, &LIFE), Outcome::Rotate { .. }));
}

#[test]
fn grace_boundary_plus_one_second_is_reuse_and_revokes_the_family() {
    let mut f = family();
    let t1 = secret(1);
    let t2 = rotate(&mut f, &t1, T0 + 100);
    let mut at_edge = f.clone();
    assert!(matches!(at_edge.present(&t1, T0 + 100 + LIFE.grace, &LIFE), Outcome::Replay { .. }));
    assert_eq!(f.present(&t1, T0 + 100 + LIFE.grace + 1, &LIFE), Outcome::Reuse);
    assert_eq!(f.revoked, Some((T0 + 111, RevokeReason::Reuse)));
    // Every token of the family is dead now, the live one included.
    assert_eq!(f.present(&t2, T0 + 112, &LIFE), Outcome::Refused(Refusal::Revoked));
    assert_eq!(f.present(&t1, T0 + 112, &LIFE), Outcome::Refused(Refusal::Revoked));
}

#[test]
fn grandparent_reuse_is_detected_even_within_grace() {
    let mut f = family();
    let t1 = secret(1);
    let t2 = rotate(&mut f, &t1, T0 + 100);
    let _t3 = rotate(&mut f, &t2, T0 + 101);
    // t1 is two rotations old: only the last retired token gets grace.
    assert_eq!(f.present(&t1, T0 + 102, &LIFE), Outcome::Reuse);
    assert!(f.revoked.is_some());
}

#[test]
fn old_tokens_are_recognised_deep_in_the_chain() {
    let mut f = family();
    let mut tokens = vec![secret(1)];
    for i in 0..200 {
        let next = rotate(&mut f, tokens.last().unwrap(), T0 + 60 * (i + 1));
        tokens.push(next);
    }
    let mut probe = f.clone();
    assert_eq!(probe.present(&tokens[0], T0 + 60 * 300, &LIFE), Outcome::Reuse);
    let mut probe = f.clone();
    assert_eq!(probe.present(&tokens[150], T0 + 60 * 300, &LIFE), Outcome::Reuse);
}

#[test]
fn forged_tokens_change_nothing() {
    let mut f = family();
    let t1 = secret(1);
    let _t2 = rotate(&mut f, &t1, T0 + 100);
    let snapshot = f.clone();
    for forged in [secret(2), secret(0), secret(0xAA)] {
        assert_eq!(f.present(&forged, T0 + 200, &LIFE), Outcome::Refused(Refusal::Unknown));
    }
    assert_eq!(f, snapshot, "someone who knows only the sid cannot revoke the session");
}

#[test]
fn idle_and_absolute_expiry() {
    let mut f = family();
    let t1 = secret(1);
    let mut idle = f.clone();
    assert!(matches!(idle.present(&t1, T0 + LIFE.idle - 1, &LIFE), Outcome::Rotate { .. }));
    assert_eq!(idle.present(&t1, T0 + LIFE.idle, &LIFE), Outcome::Refused(Refusal::Idle));
    // Using it keeps it alive, but never past the absolute lifetime.
    let mut token = t1;
    let mut now = T0;
    while now + 86_400 < T0 + LIFE.absolute {
        now += 86_400;
        token = rotate(&mut f, &token, now);
    }
    assert_eq!(f.present(&token, T0 + LIFE.absolute, &LIFE), Outcome::Refused(Refusal::Expired));
    assert_eq!(f.expires_at(T0, &LIFE), T0 + LIFE.idle);
    assert_eq!(f.expires_at(T0 + LIFE.absolute - 5, &LIFE), T0 + LIFE.absolute);
}

#[test]
fn revoke_after_rotate_kills_live_and_grace_tokens() {
    let mut f = family();
    let t1 = secret(1);
    let t2 = rotate(&mut f, &t1, T0 + 100);
    f.revoke(T0 + 101, RevokeReason::Logout);
    assert_eq!(f.present(&t2, T0 + 102, &LIFE), Outcome::Refused(Refusal::Revoked));
    assert_eq!(f.present(&t1, T0 + 102, &LIFE), Outcome::Refused(Refusal::Revoked), "no grace replay after logout");
    assert!(f.last_rotation.is_none(), "the replay pair is forgotten");
    f.revoke(T0 + 200, RevokeReason::LogoutAll);
    assert_eq!(f.revoked, Some((T0 + 101, RevokeReason::Logout)), "the first reason stays");
}

fn doc_with_account() -> AccountDoc {
    AccountDoc {
        account: Some(Account {
            sub: "sub-1".into(),
            email: "a@example.com".into(),
            password: "$argon2id$...".into(),
            created_at: T0,
            scope: "api".into(),
            roles: vec!["user".into()],
            families: vec![],
            email_verified: false,
            disabled: false,
            app_metadata: serde_json::Value::Null,
            user_metadata: serde_json::Value::Null,
        }),
        ..AccountDoc::default()
    }
}

#[test]
fn account_reuse_and_logout_reach_the_denylist() {
    let mut doc = doc_with_account();
    doc.start_session(Family::new("s1".into(), secret(0xA1), &secret(1), T0), T0, &LIFE, T0 + COVER);
    doc.start_session(Family::new("s2".into(), secret(0xA2), &secret(2), T0), T0, &LIFE, T0 + COVER);
    let next = match doc.refresh("s1", &secret(1), T0 + 5, &LIFE, T0 + 5 + COVER) {
        RefreshResult::Rotate { next } => next,
        other => panic!("{other:?}"),
    };
    doc.commit_rotation("s1", &secret(1), &next, ("a".into(), T0 + 905), T0 + 5);
    assert!(doc.revocation.sids.is_empty());
    // Reuse after grace.
    assert_eq!(doc.refresh("s1", &secret(1), T0 + 100, &LIFE, T0 + 100 + COVER), RefreshResult::Reused);
    assert_eq!(doc.revocation.sids.get("s1"), Some(&(T0 + 100 + COVER)));
    assert!(matches!(doc.refresh("s1", &next, T0 + 101, &LIFE, T0 + 101 + COVER), RefreshResult::Refused(_)));
    // Unknown session.
    assert_eq!(doc.refresh("nope", &secret(1), T0, &LIFE, T0), RefreshResult::Refused(Refusal::Unknown));
    // Logout is idempotent.
    doc.logout("s2", T0 + 200, T0 + 200 + COVER);
    doc.logout("s2", T0 + 201, T0 + 201 + COVER);
    assert!(doc.revocation.sids.contains_key("s2"));
    doc.prune(T0 + 300, &LIFE);
    assert!(doc.account.as_ref().unwrap().families.is_empty(), "revoked families are pruned");
}

#[test]
fn logout_all_revokes_every_session_and_sets_the_cutoff() {
    let mut doc = doc_with_account();
    for i in 0..3u8 {
        doc.start_session(Family::new(format!("s{i}"), secret(i), &secret(10 + i), T0), T0, &LIFE, T0 + COVER);
    }
    doc.logout_all(T0 + 50, T0 + 50 + COVER);
    assert_eq!(doc.revocation.sids.len(), 3);
    assert_eq!(doc.revocation.all_before.map(|c| c.at), Some(T0 + 50));
    for i in 0..3u8 {
        assert!(matches!(
            doc.refresh(&format!("s{i}"), &secret(10 + i), T0 + 51, &LIFE, T0),
            RefreshResult::Refused(Refusal::Revoked)
        ));
    }
}

#[test]
fn sessions_beyond_the_cap_evict_the_least_recently_used() {
    let mut doc = doc_with_account();
    for i in 0..MAX_SESSIONS + 2 {
        let now = T0 + i as i64;
        doc.start_session(Family::new(format!("s{i}"), secret(1), &secret(2), now), now, &LIFE, now + COVER);
    }
    let families = &doc.account.as_ref().unwrap().families;
    assert_eq!(families.len(), MAX_SESSIONS);
    assert!(!families.iter().any(|f| f.sid == "s0" || f.sid == "s1"));
    assert!(doc.revocation.sids.contains_key("s0") && doc.revocation.sids.contains_key("s1"));
}

#[test]
fn throttle_grows_and_resets() {
    let mut t = Throttle::default();
    let mut now = T0;
    for _ in 0..FREE_FAILURES - 1 {
        assert_eq!(t.check(now), Ok(()));
        t.fail(now);
    }
    assert_eq!(t.check(now), Ok(()), "four failures are free");
    t.fail(now);
    assert_eq!(t.check(now), Err(2));
    let mut last = 2;
    for _ in 0..12 {
        now = t.locked_until;
        assert_eq!(t.check(now), Ok(()));
        t.fail(now);
        let wait = t.check(now).unwrap_err();
        assert!(wait >= last && wait <= 900, "{wait} after {last}");
        last = wait;
    }
    assert_eq!(last, 900, "capped at 15 minutes");
    t.succeed();
    assert_eq!(t.check(now), Ok(()));
    assert_eq!(t.failures, 0);
    // Old failures are forgotten.
    let mut t = Throttle::default();
    for _ in 0..FREE_FAILURES - 1 {
        t.fail(T0);
    }
    t.fail(T0 + 3601);
    assert_eq!(t.failures, 1);
}

/// Random operation sequences: at most one live token per family; a revoked family never yields a
/// token; a replay within grace returns the same pair (the checks live in `session::simulation`).
#[test]
fn randomized_sequences_keep_the_invariants() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a7e_4045);
    for _ in 0..300 {
        let mut sim = Simulator::new(rng.gen(), secret(1), T0, LIFE);
        for _ in 0..60 {
            sim.step(rng.gen(), rng.gen(), rng.gen());
        }
    }
}
