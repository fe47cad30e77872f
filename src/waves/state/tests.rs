//! One test per arrow of the diagram in `super`.

use super::*;

fn counts(pending: i64, running: i64, succeeded: i64, failed: i64, skipped: i64) -> Counts {
    Counts {
        pending,
        running,
        succeeded,
        failed,
        skipped,
    }
}

/// A wave of two canaries and two batches of two, in `state` at `phase`.
fn wave(state: WaveState, phase: i32, phases: &[(i32, Counts)]) -> Snapshot {
    Snapshot {
        state,
        phase,
        phase_count: 2,
        paused_from: None,
        soak_started: false,
        soak_seconds: 30,
        dry_run: false,
        budget: Budget::default(),
        phases: phases.iter().cloned().collect(),
        gate: Gate::Wait,
        failed_canary: None,
        dry_run_attention: None,
    }
}

fn fresh() -> Vec<(i32, Counts)> {
    vec![
        (0, counts(2, 0, 0, 0, 0)),
        (1, counts(2, 0, 0, 0, 0)),
        (2, counts(2, 0, 0, 0, 0)),
    ]
}

fn canaries_done() -> Vec<(i32, Counts)> {
    vec![
        (0, counts(0, 0, 2, 0, 0)),
        (1, counts(2, 0, 0, 0, 0)),
        (2, counts(2, 0, 0, 0, 0)),
    ]
}

fn soaking(gate: Gate) -> Snapshot {
    let mut s = wave(WaveState::Soaking, 0, &canaries_done());
    s.soak_started = true;
    s.gate = gate;
    s
}

#[test]
fn a_pending_wave_with_canaries_starts_them() {
    assert_eq!(
        step(&wave(WaveState::Pending, 0, &fresh())),
        Some(Transition::StartCanary)
    );
}

#[test]
fn a_pending_wave_without_canaries_starts_its_first_batch() {
    let s = wave(WaveState::Pending, 0, &fresh()[1..]);
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 1 }));
}

#[test]
fn a_pending_dry_run_starts_its_one_phase_and_never_halts() {
    let mut s = wave(WaveState::Pending, 0, &[(1, counts(3, 0, 0, 0, 0))]);
    s.dry_run = true;
    s.phase_count = 1;
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 1 }));
    s.state = WaveState::Rolling;
    s.phase = 1;
    s.phases.insert(1, counts(0, 0, 1, 2, 0));
    assert_eq!(
        step(&s),
        Some(Transition::Complete),
        "failures do not halt a dry run"
    );
}

#[test]
fn a_dry_run_halts_on_a_tenant_that_needs_attention_naming_it() {
    let mut s = wave(WaveState::Rolling, 1, &[(1, counts(2, 1, 0, 1, 0))]);
    s.dry_run = true;
    s.phase_count = 1;
    s.dry_run_attention = Some(
        "acme failed: needs attention at V2: V2__x.sql ended the dry run's transaction itself"
            .into(),
    );
    assert_eq!(
        step(&s),
        Some(Transition::Halt {
            reason: "dry run on acme failed: needs attention at V2: V2__x.sql ended the dry run's transaction itself".into()
        })
    );
}

#[test]
fn a_pending_wave_with_no_targets_left_completes() {
    let s = wave(WaveState::Pending, 0, &[]);
    assert_eq!(step(&s), Some(Transition::Complete));
}

#[test]
fn a_failed_canary_halts_the_wave_naming_it() {
    let mut s = wave(
        WaveState::Canary,
        0,
        &[(0, counts(0, 1, 0, 1, 0)), (1, counts(2, 0, 0, 0, 0))],
    );
    s.failed_canary = Some("acme failed: boom".into());
    assert_eq!(
        step(&s),
        Some(Transition::Halt {
            reason: "canary acme failed: boom".into()
        })
    );
}

#[test]
fn a_skipped_canary_halts_the_wave() {
    let s = wave(
        WaveState::Canary,
        0,
        &[(0, counts(0, 0, 1, 0, 1)), (1, counts(2, 0, 0, 0, 0))],
    );
    assert!(matches!(step(&s), Some(Transition::Halt { reason }) if reason.contains("skipped")));
}

#[test]
fn canaries_still_running_wait() {
    let s = wave(
        WaveState::Canary,
        0,
        &[(0, counts(0, 1, 1, 0, 0)), (1, counts(2, 0, 0, 0, 0))],
    );
    assert_eq!(step(&s), None);
}

#[test]
fn canaries_that_all_succeeded_pass_and_then_the_soak_starts() {
    let s = wave(WaveState::Canary, 0, &canaries_done());
    assert_eq!(step(&s), Some(Transition::CanaryPassed));
    let s = wave(WaveState::Soaking, 0, &canaries_done());
    assert_eq!(step(&s), Some(Transition::StartSoak { seconds: 30 }));
}

#[test]
fn a_soak_still_running_waits() {
    assert_eq!(step(&soaking(Gate::Wait)), None);
}

#[test]
fn a_passed_soak_moves_to_rolling_and_then_starts_the_first_batch() {
    assert_eq!(step(&soaking(Gate::Pass)), Some(Transition::SoakPassed));
    let s = wave(WaveState::Rolling, 0, &canaries_done());
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 1 }));
}

#[test]
fn a_failed_analysis_halts_a_soaking_wave() {
    assert_eq!(
        step(&soaking(Gate::Halt("errors > 0".into()))),
        Some(Transition::Halt {
            reason: "errors > 0".into()
        })
    );
}

#[test]
fn an_inconclusive_analysis_pauses_a_soaking_wave() {
    assert_eq!(
        step(&soaking(Gate::Pause("no data".into()))),
        Some(Transition::Pause {
            from: WaveState::Soaking,
            reason: Some("no data".into())
        })
    );
}

#[test]
fn a_finished_batch_starts_the_next_one() {
    let s = wave(
        WaveState::Rolling,
        1,
        &[
            (0, counts(0, 0, 2, 0, 0)),
            (1, counts(0, 0, 2, 0, 0)),
            (2, counts(2, 0, 0, 0, 0)),
        ],
    );
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 2 }));
}

#[test]
fn a_batch_with_open_targets_waits() {
    let s = wave(
        WaveState::Rolling,
        1,
        &[(1, counts(1, 1, 0, 0, 0)), (2, counts(2, 0, 0, 0, 0))],
    );
    assert_eq!(step(&s), None);
}

#[test]
fn a_resumed_wave_finishes_earlier_batches_before_moving_on() {
    // Batch 1's failed tenant is pending again after a resume.
    let s = wave(
        WaveState::Rolling,
        2,
        &[(1, counts(1, 0, 1, 0, 0)), (2, counts(0, 0, 2, 0, 0))],
    );
    assert_eq!(step(&s), None);
}

#[test]
fn the_last_batch_done_completes_the_wave() {
    let s = wave(
        WaveState::Rolling,
        2,
        &[(1, counts(0, 0, 2, 0, 0)), (2, counts(0, 0, 1, 0, 1))],
    );
    assert_eq!(step(&s), Some(Transition::Complete));
}

#[test]
fn a_spent_budget_halts_a_rolling_wave() {
    let s = wave(
        WaveState::Rolling,
        1,
        &[(1, counts(0, 1, 0, 1, 0)), (2, counts(2, 0, 0, 0, 0))],
    );
    assert!(matches!(
        step(&s),
        Some(Transition::Halt { reason }) if reason.contains("1 of 2 tenants") && reason.contains("budget 0")
    ));
}

#[test]
fn failures_within_the_budget_do_not_halt() {
    let mut s = wave(
        WaveState::Rolling,
        1,
        &[(1, counts(0, 0, 1, 1, 0)), (2, counts(2, 0, 0, 0, 0))],
    );
    s.budget = Budget {
        max_failures: Some(1),
        max_failure_percent: None,
    };
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 2 }));
    s.budget = Budget {
        max_failures: None,
        max_failure_percent: Some(40.0),
    };
    assert!(
        matches!(step(&s), Some(Transition::Halt { reason }) if reason.contains("budget 40%")),
        "1 of 2 started is 50% > 40%"
    );
}

#[test]
fn finished_halted_and_paused_waves_do_not_move_by_themselves() {
    for state in [
        WaveState::Completed,
        WaveState::Halted,
        WaveState::Paused,
        WaveState::Aborted,
    ] {
        assert_eq!(step(&wave(state, 0, &fresh())), None, "{state}");
    }
}

#[test]
fn every_active_state_can_be_paused_and_resumed_to_where_it_was() {
    for state in WaveState::ACTIVE {
        assert_eq!(
            operate(state, None, 0, Action::Pause),
            Some(Transition::Pause {
                from: state,
                reason: None
            })
        );
        assert_eq!(
            operate(WaveState::Paused, Some(state), 0, Action::Resume),
            Some(Transition::Resume {
                from: WaveState::Paused,
                to: state
            })
        );
    }
}

#[test]
fn a_halted_wave_resumes_its_canaries_or_its_batches() {
    assert_eq!(
        operate(WaveState::Halted, None, 0, Action::Resume),
        Some(Transition::Resume {
            from: WaveState::Halted,
            to: WaveState::Canary
        })
    );
    assert_eq!(
        operate(WaveState::Halted, None, 2, Action::Resume),
        Some(Transition::Resume {
            from: WaveState::Halted,
            to: WaveState::Rolling
        })
    );
}

#[test]
fn only_soaking_waves_are_promoted() {
    assert_eq!(
        operate(WaveState::Soaking, None, 0, Action::Promote),
        Some(Transition::Promote)
    );
    assert_eq!(
        operate(
            WaveState::Paused,
            Some(WaveState::Soaking),
            0,
            Action::Promote
        ),
        Some(Transition::Promote)
    );
    for state in [WaveState::Pending, WaveState::Canary, WaveState::Rolling] {
        assert_eq!(operate(state, None, 0, Action::Promote), None, "{state}");
        assert_eq!(
            operate(WaveState::Paused, Some(state), 0, Action::Promote),
            None
        );
    }
}

#[test]
fn every_unfinished_state_can_be_aborted_and_finished_ones_cannot() {
    for state in WaveState::ALL {
        let got = operate(state, None, 0, Action::Abort);
        assert_eq!(got.is_some(), !state.is_finished(), "{state}");
    }
}

#[test]
fn actions_that_do_not_apply_are_refused() {
    assert_eq!(operate(WaveState::Completed, None, 1, Action::Pause), None);
    assert_eq!(operate(WaveState::Halted, None, 1, Action::Pause), None);
    assert_eq!(operate(WaveState::Rolling, None, 1, Action::Resume), None);
    assert_eq!(operate(WaveState::Aborted, None, 1, Action::Resume), None);
}

#[test]
fn every_transition_names_a_timeline_event_of_the_spec() {
    const TIMELINE_TYPES: [&str; 12] = crate::waves::timeline::EVENT_TYPES;
    let all = [
        Transition::StartCanary,
        Transition::StartBatch { batch: 3 },
        Transition::CanaryPassed,
        Transition::StartSoak { seconds: 1 },
        Transition::SoakPassed,
        Transition::Complete,
        Transition::Halt { reason: "r".into() },
        Transition::Pause {
            from: WaveState::Rolling,
            reason: None,
        },
        Transition::Resume {
            from: WaveState::Paused,
            to: WaveState::Rolling,
        },
        Transition::Promote,
        Transition::Abort,
    ];
    for t in &all {
        assert!(TIMELINE_TYPES.contains(&t.event_type()), "{t:?}");
    }
    for ty in TIMELINE_TYPES.iter().filter(|ty| **ty != "created") {
        assert!(
            all.iter().any(|t| t.event_type() == *ty),
            "no transition writes {ty}"
        );
    }
    assert_eq!(
        Transition::StartBatch { batch: 3 }.payload(),
        json!({"batch": 3})
    );
    assert_eq!(
        Transition::Halt { reason: "r".into() }.payload(),
        json!({"reason": "r"})
    );
}

#[test]
fn states_round_trip_through_their_stored_names() {
    for state in WaveState::ALL {
        assert_eq!(state.as_str().parse::<WaveState>(), Ok(state));
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
    assert!("sleeping".parse::<WaveState>().is_err());
}

#[test]
fn counts_add_each_target_state_to_its_own_field_and_the_rest_to_skipped() {
    let mut c = Counts::default();
    for (state, n) in [
        ("pending", 1),
        ("running", 2),
        ("succeeded", 4),
        ("failed", 8),
        ("skipped", 16),
        ("cancelled", 32),
    ] {
        c.add(state, n);
    }
    assert_eq!(c, counts(1, 2, 4, 8, 48));
    assert_eq!(c.total(), 63);
    assert_eq!(c.open(), 3);
}

#[test]
fn a_snapshot_sums_every_state_over_every_phase() {
    let s = wave(
        WaveState::Rolling,
        2,
        &[(0, counts(1, 2, 3, 4, 5)), (1, counts(10, 20, 30, 40, 50))],
    );
    assert_eq!(s.all(), counts(11, 22, 33, 44, 55));
    assert_eq!(s.started(), 165);
    assert_eq!(s.open_through(0), 3);
    assert_eq!(s.open_through(1), 33);
}

#[test]
fn only_completed_and_aborted_waves_are_finished_and_only_canary_and_rolling_claim() {
    use WaveState::*;
    let finished: Vec<WaveState> = WaveState::ALL
        .into_iter()
        .filter(|s| s.is_finished())
        .collect();
    assert_eq!(finished, [Completed, Aborted]);
    let claiming: Vec<WaveState> = WaveState::ALL
        .into_iter()
        .filter(|s| s.claims_work())
        .collect();
    assert_eq!(claiming, [Canary, Rolling]);
    let active: Vec<WaveState> = WaveState::ALL
        .into_iter()
        .filter(|s| s.is_active())
        .collect();
    assert_eq!(active, [Pending, Canary, Soaking, Rolling]);
}

#[test]
fn every_transition_lands_in_its_state_with_its_payload() {
    use WaveState::*;
    let cases = [
        (Transition::StartCanary, Canary, json!({})),
        (
            Transition::StartBatch { batch: 3 },
            Rolling,
            json!({"batch": 3}),
        ),
        (Transition::CanaryPassed, Soaking, json!({})),
        (
            Transition::StartSoak { seconds: 45 },
            Soaking,
            json!({"soak_seconds": 45}),
        ),
        (Transition::SoakPassed, Rolling, json!({})),
        (Transition::Complete, Completed, json!({})),
        (
            Transition::Halt { reason: "r".into() },
            Halted,
            json!({"reason": "r"}),
        ),
        (
            Transition::Pause {
                from: Soaking,
                reason: Some("no data".into()),
            },
            Paused,
            json!({"from": "soaking", "reason": "no data"}),
        ),
        (
            Transition::Pause {
                from: Rolling,
                reason: None,
            },
            Paused,
            json!({"from": "rolling"}),
        ),
        (
            Transition::Resume {
                from: Halted,
                to: Canary,
            },
            Canary,
            json!({"from": "halted", "to": "canary"}),
        ),
        (Transition::Promote, Rolling, json!({})),
        (Transition::Abort, Aborted, json!({})),
    ];
    for (t, to, payload) in cases {
        assert_eq!(t.to(), to, "{t:?}");
        assert_eq!(t.payload(), payload, "{t:?}");
    }
}

#[test]
fn every_transition_writes_its_own_event_type() {
    let names = [
        (Transition::StartCanary, "canary_started"),
        (Transition::StartBatch { batch: 1 }, "batch_started"),
        (Transition::CanaryPassed, "canary_passed"),
        (Transition::StartSoak { seconds: 1 }, "soak_started"),
        (Transition::SoakPassed, "soak_passed"),
        (Transition::Complete, "completed"),
        (Transition::Halt { reason: "r".into() }, "halted"),
        (
            Transition::Pause {
                from: WaveState::Rolling,
                reason: None,
            },
            "paused",
        ),
        (
            Transition::Resume {
                from: WaveState::Paused,
                to: WaveState::Rolling,
            },
            "resumed",
        ),
        (Transition::Promote, "promoted"),
        (Transition::Abort, "aborted"),
    ];
    for (t, name) in names {
        assert_eq!(t.event_type(), name);
    }
}

#[test]
fn a_failed_canary_without_a_name_still_halts_saying_so() {
    let s = wave(
        WaveState::Canary,
        0,
        &[(0, counts(0, 0, 1, 1, 0)), (1, counts(2, 0, 0, 0, 0))],
    );
    assert_eq!(
        step(&s),
        Some(Transition::Halt {
            reason: "a canary failed".into()
        })
    );
}

#[test]
fn a_failure_count_budget_halts_only_above_its_number() {
    let mut s = wave(
        WaveState::Rolling,
        1,
        &[(1, counts(0, 0, 0, 2, 0)), (2, counts(2, 0, 0, 0, 0))],
    );
    s.budget.max_failures = Some(2);
    assert_eq!(step(&s), Some(Transition::StartBatch { batch: 2 }));
    s.budget.max_failures = Some(1);
    assert!(matches!(
        step(&s),
        Some(Transition::Halt { reason })
            if reason == "failure budget spent: 2 of 2 tenants started so far failed (budget 1)"
    ));
}

#[test]
fn a_percentage_budget_counts_only_the_tenants_started_so_far() {
    // 1 of the 4 started (25 %) failed; of the whole wave (1 of 10) it would be 10 %.
    let mut s = wave(
        WaveState::Rolling,
        1,
        &[
            (0, counts(0, 0, 2, 0, 0)),
            (1, counts(0, 0, 1, 1, 0)),
            (2, counts(6, 0, 0, 0, 0)),
        ],
    );
    s.budget.max_failure_percent = Some(25.0);
    assert_eq!(
        step(&s),
        Some(Transition::StartBatch { batch: 2 }),
        "25 % is within 25 %"
    );
    s.budget.max_failure_percent = Some(20.0);
    assert!(matches!(
        step(&s),
        Some(Transition::Halt { reason }) if reason.contains("1 of 4 tenants") && reason.contains("budget 20%")
    ));
}

#[test]
fn a_budget_describes_both_of_its_limits() {
    let both = Budget {
        max_failures: Some(3),
        max_failure_percent: Some(12.5),
    };
    assert_eq!(both.describe(), "3 / 12.5%");
    assert_eq!(Budget::default().describe(), "0");
}

#[test]
fn a_real_wave_ignores_the_dry_run_attention_field() {
    let mut s = wave(
        WaveState::Rolling,
        1,
        &[(1, counts(1, 0, 1, 0, 0)), (2, counts(2, 0, 0, 0, 0))],
    );
    s.dry_run_attention = Some("acme".into());
    assert_eq!(step(&s), None);
}

#[test]
fn actions_are_named_by_their_verb() {
    let verbs: Vec<&str> = [
        Action::Pause,
        Action::Resume,
        Action::Abort,
        Action::Promote,
    ]
    .into_iter()
    .map(Action::as_str)
    .collect();
    assert_eq!(verbs, ["pause", "resume", "abort", "promote"]);
    assert_eq!(WaveState::Soaking.to_string(), "soaking");
}
