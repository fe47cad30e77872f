use super::*;

fn cands(n: usize, canary: &[usize]) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            id: Uuid::from_u128(i as u128 + 1),
            slug: format!("t{i:02}"),
            db_host: "db1".into(),
            canary: canary.contains(&i),
        })
        .collect()
}

#[test]
fn flagged_canaries_go_first_and_the_rest_fill_batches_in_slug_order() {
    let (plan, batches) = assign_phases(cands(7, &[3]), &CanarySpec::default(), 3).unwrap();

    assert_eq!(batches, 2);
    let phase = |s: &str| plan.iter().find(|p| p.slug == s).unwrap().phase;
    assert_eq!(phase("t03"), 0);
    assert_eq!(
        [phase("t00"), phase("t01"), phase("t02"), phase("t04")],
        [1, 1, 1, 2]
    );
    assert_eq!([phase("t05"), phase("t06")], [2, 2]);
}

#[test]
fn canary_count_and_percent_are_deterministic() {
    let spec = CanarySpec {
        count: Some(2),
        ..Default::default()
    };
    let a = assign_phases(cands(20, &[]), &spec, 5).unwrap().0;
    let b = assign_phases(cands(20, &[]), &spec, 5).unwrap().0;
    let pct = assign_phases(
        cands(20, &[]),
        &CanarySpec {
            percent: Some(10.0),
            ..Default::default()
        },
        5,
    )
    .unwrap()
    .0;

    let canaries = |p: &[Planned]| {
        p.iter()
            .filter(|t| t.phase == 0)
            .map(|t| t.slug.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(canaries(&a).len(), 2);
    assert_eq!(canaries(&a), canaries(&b));
    assert_eq!(canaries(&pct), canaries(&a));
}

#[test]
fn explicit_canaries_must_be_selected() {
    let spec = CanarySpec {
        slugs: Some(vec!["nope".into()]),
        ..Default::default()
    };

    let err = assign_phases(cands(3, &[]), &spec, 5).unwrap_err();

    assert!(err.to_string().contains("nope"));
}

#[test]
fn defaults_fill_in_and_ranges_are_checked() {
    let s = WaveRequest::default().settings().unwrap();
    assert_eq!(
        (
            s.batch_size,
            s.max_concurrency,
            s.max_per_host,
            s.run.max_attempts
        ),
        (50, 10, 10, 5)
    );
    let bad = WaveRequest {
        batch_size: Some(0),
        ..Default::default()
    };
    assert!(bad.settings().is_err());
}

/// The field a request is refused for, or `None` when it is accepted.
fn refused(req: WaveRequest) -> Option<&'static str> {
    match req.settings() {
        Ok(_) => None,
        Err(WaveError::Invalid { field, .. }) => Some(field),
        Err(e) => panic!("not a validation error: {e}"),
    }
}

#[test]
fn each_bounded_setting_accepts_1_and_its_maximum_and_refuses_one_beyond() {
    type Set = fn(&mut WaveRequest, i32);
    let fields: [(&str, i32, Set); 6] = [
        ("batch_size", 100_000, |r, v| r.batch_size = Some(v)),
        ("max_concurrency", 1000, |r, v| r.max_concurrency = Some(v)),
        ("max_per_host", 1000, |r, v| r.max_per_host = Some(v)),
        ("lock_timeout_ms", 3_600_000, |r, v| {
            r.lock_timeout_ms = Some(v)
        }),
        ("statement_timeout_ms", 86_400_000, |r, v| {
            r.statement_timeout_ms = Some(v)
        }),
        ("max_attempts", 100, |r, v| r.max_attempts = Some(v)),
    ];
    for (field, max, set) in fields {
        let with = |v: i32| {
            let mut r = WaveRequest::default();
            set(&mut r, v);
            r
        };
        assert_eq!(refused(with(1)), None, "{field} = 1");
        assert_eq!(refused(with(max)), None, "{field} = {max}");
        assert_eq!(refused(with(0)), Some(field), "{field} = 0");
        assert_eq!(refused(with(-1)), Some(field), "{field} = -1");
        assert_eq!(refused(with(max + 1)), Some(field), "{field} = {max} + 1");
    }
    let s = WaveRequest {
        batch_size: Some(7),
        max_concurrency: Some(3),
        lock_timeout_ms: Some(1),
        statement_timeout_ms: Some(2),
        max_attempts: Some(9),
        ..Default::default()
    }
    .settings()
    .unwrap();
    assert_eq!(
        (
            s.batch_size,
            s.max_concurrency,
            s.max_per_host,
            s.run.lock_timeout_ms,
            s.run.statement_timeout_ms,
            s.run.max_attempts
        ),
        (7, 3, 3, 1, 2, 9),
        "max_per_host defaults to max_concurrency"
    );
}

#[test]
fn a_failure_budget_is_a_count_of_zero_or_more_or_a_percentage_up_to_100() {
    let count = |n| WaveRequest {
        max_failures: Some(n),
        ..Default::default()
    };
    let percent = |p| WaveRequest {
        max_failure_percent: Some(p),
        ..Default::default()
    };

    assert_eq!(refused(count(0)), None);
    assert_eq!(refused(count(3)), None);
    assert_eq!(refused(count(-1)), Some("max_failures"));
    for ok in [0.0, 12.5, 100.0] {
        assert_eq!(refused(percent(ok)), None, "{ok}");
    }
    for bad in [-0.5, 100.5, f64::NAN] {
        assert_eq!(refused(percent(bad)), Some("max_failure_percent"), "{bad}");
    }
}

#[test]
fn the_soak_lasts_from_0_seconds_to_a_week() {
    let soak = |v| WaveRequest {
        soak_seconds: Some(v),
        ..Default::default()
    };

    assert_eq!(WaveRequest::default().settings().unwrap().soak_seconds, 30);
    assert_eq!(soak(0).settings().unwrap().soak_seconds, 0);
    assert_eq!(soak(604_800).settings().unwrap().soak_seconds, 604_800);
    assert_eq!(refused(soak(604_801)), Some("soak_seconds"));
    assert_eq!(refused(soak(-1)), Some("soak_seconds"));
}

#[test]
fn a_dry_run_without_analysis_is_accepted_and_runs_as_a_dry_run() {
    let s = WaveRequest {
        dry_run: Some(true),
        ..Default::default()
    }
    .settings()
    .unwrap();

    assert!(s.run.dry_run);
    assert!(!WaveRequest::default().settings().unwrap().run.dry_run);
}

#[test]
fn the_canary_order_is_the_fnv_1a_hash_of_the_slug() {
    // Published FNV-1a 64-bit test vectors.
    assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn counted_canaries_are_not_simply_the_first_slugs() {
    let spec = CanarySpec {
        count: Some(3),
        ..Default::default()
    };

    let (plan, batches) = assign_phases(cands(20, &[]), &spec, 5).unwrap();

    let canaries: Vec<&str> = plan
        .iter()
        .filter(|t| t.phase == 0)
        .map(|t| t.slug.as_str())
        .collect();
    assert_eq!(canaries, CHOSEN_3_OF_20);
    assert_eq!(batches, 4, "17 others in batches of 5");
}

/// The three slugs of `t00`..`t19` with the smallest FNV-1a hashes, in slug order.
const CHOSEN_3_OF_20: [&str; 3] = ["t14", "t16", "t17"];

#[test]
fn explicit_canaries_are_matched_case_insensitively_and_go_first() {
    let spec = CanarySpec {
        slugs: Some(vec!["T04".into(), "t01".into()]),
        ..Default::default()
    };

    let (plan, batches) = assign_phases(cands(5, &[2]), &spec, 2).unwrap();

    let phases: Vec<(&str, i32)> = plan.iter().map(|p| (p.slug.as_str(), p.phase)).collect();
    assert_eq!(
        phases,
        [("t00", 1), ("t01", 0), ("t02", 1), ("t03", 2), ("t04", 0)],
        "the flag on t02 does not count when slugs are named"
    );
    assert_eq!(batches, 2);
}

#[test]
fn a_canary_percentage_outside_0_to_100_is_refused() {
    for bad in [-1.0, 100.5] {
        let spec = CanarySpec {
            percent: Some(bad),
            ..Default::default()
        };
        let err = assign_phases(cands(4, &[]), &spec, 2).unwrap_err();
        assert!(
            matches!(
                err,
                WaveError::Invalid {
                    field: "canary.percent",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    let all = CanarySpec {
        percent: Some(100.0),
        ..Default::default()
    };
    let (plan, batches) = assign_phases(cands(4, &[]), &all, 2).unwrap();
    assert!(plan.iter().all(|p| p.phase == 0));
    assert_eq!(batches, 0);
}
