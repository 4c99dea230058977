//! The refresh-family state machine driven by random operation sequences, its invariants asserted by
//! `session::simulation` (one live token, revoked never yields, grace replay returns the same pair).
#![no_main]

use gatehouse::account::family::simulation::Simulator;
use gatehouse::account::family::Lifetimes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let life = Lifetimes { absolute: 3_600, idle: 600, grace: 10 };
    let mut sim = Simulator::new([0xA5; 32], [1; 32], 1_767_225_600, life);
    for chunk in data.chunks(3) {
        let (op, arg, seed) = (chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0));
        sim.step(op, arg, [seed; 32]);
    }
});
