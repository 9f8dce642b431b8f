//! Runs that once found a real bug, kept so the bug stays fixed: each says what it found, and keeps the
//! fault plan, assignor and broker count that found it, so the schedule does not drift away as seeds'
//! plans change.

use std::time::Duration;

use sluice_sim::coverage::Event;
use sluice_sim::faults::{Fault, Operation, Role, Scheduled};
use sluice_sim::kit::SimTest;
use sluice_sim::{builtin, Report};

/// A cooperative rebalance took one partition from a sink task, and the flush before its commit failed:
/// the task had dropped its whole buffer, but the runtime rewound only the revoked partition, so records of
/// the partitions it kept were never delivered again (lost, and committed past what was durable). Found by
/// `crash-restart-storm` seed 51; its fault plan is kept here so the schedule cannot drift away.
#[test]
fn a_failed_flush_during_a_cooperative_revocation_rewinds_every_partition() {
    let scenario = found_in("crash-restart-storm").with_scenario(|s| {
        s.assignors = &["cooperative-sticky"];
        s.brokers = 1;
    });
    let at = |ms| Duration::from_millis(ms);
    let plan = vec![
        Scheduled {
            at: at(7_096),
            fault: Fault::FailFlush,
        },
        Scheduled {
            at: at(7_778),
            fault: Fault::RestartBroker {
                broker: 0,
                down: at(747),
                failover: at(747),
            },
        },
        Scheduled {
            at: at(12_970),
            fault: Fault::FailFlush,
        },
        Scheduled {
            at: at(38_239),
            fault: Fault::CrashWorker {
                worker: 1,
                down: at(16_443),
            },
        },
        Scheduled {
            at: at(54_556),
            fault: Fault::FailFlush,
        },
    ];
    let report = scenario.run_exact(51, plan).expect("the simulation runs");
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
}

/// A worker restarted while the broker was down could not create the offsets topic when it started its
/// exactly-once source connector, and gave the connector up for good: nothing was produced after that.
/// The worker now waits for Kafka to create the topic, as Kafka Connect's does. Found by
/// `exactly-once-source` seed 15 (worker 0 comes back at 38.1 s, the broker at 39.0 s).
#[test]
fn an_exactly_once_connector_started_while_the_broker_is_down_waits_for_it() {
    let scenario = exactly_once(&["cooperative-sticky"], &["interval"]).with_scenario(|s| {
        s.brokers = 1;
    });
    let at = |ms| Duration::from_millis(ms);
    let crash = |ms, worker, down| Scheduled {
        at: at(ms),
        fault: Fault::CrashWorker {
            worker,
            down: at(down),
        },
    };
    let broker = |ms, down| Scheduled {
        at: at(ms),
        fault: Fault::RestartBroker {
            broker: 0,
            down: at(down),
            failover: at(down),
        },
    };
    let plan = vec![
        crash(8_120, 1, 8_810),
        broker(10_324, 445),
        crash(18_748, 0, 19_367),
        crash(31_788, 1, 9_482),
        broker(37_118, 1_907),
        broker(49_527, 3_490),
        crash(52_524, 1, 2_802),
    ];
    let report = scenario.run_exact(15, plan).expect("the simulation runs");
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
}

/// The `exactly-once-source` scenario with these assignors and transaction boundaries to pick from.
fn exactly_once(
    assignors: &'static [&'static str],
    transaction_boundaries: &'static [&'static str],
) -> SimTest {
    found_in("exactly-once-source").with_scenario(|s| {
        s.assignors = assignors;
        s.transaction_boundaries = transaction_boundaries;
    })
}

/// The built-in scenario `name` as it was when these runs found their bugs: source commits every 2 s
/// (since then 2,030 ms, off the polls' beat), so that each plan still meets the moments it was found at.
fn found_in(name: &str) -> SimTest {
    builtin::scenario(name)
        .expect("a known scenario")
        .with_scenario(|s| s.commit_interval = Duration::from_secs(2))
}

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// At `ms`, worker `worker` is told to stop, and comes back `away` ms later.
fn stop(ms: u64, worker: usize, away: u64) -> Scheduled {
    Scheduled {
        at: at(ms),
        fault: Fault::StopWorker {
            worker,
            away: at(away),
            cut_off: false,
        },
    }
}

/// At `ms`, worker `worker` loses the network for `duration` ms.
fn hold(ms: u64, worker: usize, duration: u64) -> Scheduled {
    Scheduled {
        at: at(ms),
        fault: Fault::HoldNetwork {
            worker,
            duration: at(duration),
        },
    }
}

/// At `ms`, retention deletes `percent` of the readable records of `partitions`.
fn delete(ms: u64, partitions: Vec<i32>, percent: u8) -> Scheduled {
    Scheduled {
        at: at(ms),
        fault: Fault::DeleteRecords {
            partitions,
            percent,
        },
    }
}

/// At `ms`, worker 0 is cut off for `duration` ms and the source task is placed on worker 1.
fn take_over(ms: u64, duration: u64) -> Scheduled {
    Scheduled {
        at: at(ms),
        fault: Fault::TakeOver {
            from: 0,
            to: 1,
            duration: at(duration),
        },
    }
}

/// Fails, with the report, unless the run passed.
fn assert_passed(report: &Report) {
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
}

/// Fails unless the sink group's offset of every partition is at its end (offset 1,238: retention
/// deleted everything before it).
fn assert_group_at_the_end(report: &Report) {
    let behind: Vec<_> = report
        .final_offsets
        .sink
        .iter()
        .filter(|(_, offset)| **offset != 1238)
        .collect();
    assert!(
        behind.is_empty(),
        "the group's offsets did not reach the end of each partition: {behind:?}\n{}",
        report.to_yaml()
    );
}

/// Whether the trace shows a producer registering at `epoch`.
fn registered_at_epoch(report: &Report, epoch: i16) -> usize {
    let needle = format!("epoch: {epoch} }}");
    report
        .trace
        .iter()
        .filter(|line| line.contains("ProducerInitialized") && line.contains(&needle))
        .count()
}

/// Worker 0 came back from a clean stop at 29.3 s, and its exactly-once source instances began registering
/// their transactional ids; a take-over cut the worker off just then and started the task on worker 1.
/// Worker 0 was told to stop at 41.7 s while still cut off, but its instances went on retrying the
/// registration: when the network healed they registered, fenced the live instances on worker 1, and
/// from then on nothing ran the source (4,820 of 10,000 records never reached Kafka). Found by
/// `exactly-once-source` seed 593 on 8210dd7 (the take-over there came 35 ms after the restart; here
/// 120 ms, where the instances are registering on today's code). Now a stop ends the retries.
#[test]
fn a_stopping_instance_that_regains_the_network_does_not_fence_the_live_one() {
    let plan = vec![
        stop(27_785, 2, 19_417),
        stop(27_830, 0, 1_450),
        take_over(29_400, 16_656),
        stop(41_695, 0, 7_795),
    ];
    let report = exactly_once(&["range"], &["poll"])
        .run_exact(593, plan)
        .expect("the simulation runs");
    let at_ms = |line: &String| line.split(' ').next().and_then(|ms| ms.parse::<u64>().ok());
    let released = 29_400 + 16_656;
    let stopped_while_cut_off = report.trace.iter().any(|line| {
        line.contains("worker-0 source (placement 0) stopped")
            && at_ms(line).is_some_and(|ms| (41_695..released).contains(&ms))
    });
    assert!(
        stopped_while_cut_off,
        "the fault was reached: worker 0's instance stopped while cut off\n{}",
        report.trace.join("\n")
    );
    assert_eq!(
        registered_at_epoch(&report, 1),
        2,
        "worker 1's instances registered once, fencing worker 0's"
    );
    assert_eq!(
        registered_at_epoch(&report, 2),
        0,
        "nothing registered after the take-over"
    );
    assert_passed(&report);
}

/// The same take-over as above, but nobody tells worker 0 to stop: when the network heals, its instance
/// (placement 0) finishes starting. Registering would fence the live instance on worker 1 (placement 1);
/// instead it reads generation 1 of its task in the offsets topic, newer than its own, and does not
/// register.
#[test]
fn an_instance_of_an_older_placement_does_not_register() {
    let plan = vec![stop(27_830, 0, 1_450), take_over(29_400, 16_656)];
    let report = exactly_once(&["range"], &["poll"])
        .run_exact(593, plan)
        .expect("the simulation runs");
    assert_eq!(
        report.coverage.get(&Event::OlderGenerationRefused),
        Some(&1),
        "the fault was reached: worker 0's instance found the newer generation\n{}",
        report.trace.join("\n")
    );
    let refused = report.trace.iter().find(|line| {
        line.contains("worker-0 source (placement 0) failed") && line.contains("shows generation 1")
    });
    assert!(refused.is_some(), "{}", report.trace.join("\n"));
    assert_eq!(
        registered_at_epoch(&report, 2),
        0,
        "nothing registered after the take-over"
    );
    assert_passed(&report);
}

/// Worker 0 restarted at 41.2 s and began starting its exactly-once source tasks; a take-over cut it off
/// at 42.0 s and started them on worker 1. One of worker 0's instances had checked the offsets topic for
/// a newer generation just before worker 1 recorded its own, and its registration was on the wire: when
/// the network healed it fenced worker 1's live instance (the check, then the act, cannot be one step).
/// The fenced task stayed failed while its sibling ran on, and half the streams never reached Kafka.
/// Found by `exactly-once-source` seed 773 (sweep of 1..2000 on 6aff571); now a failed task stops its
/// instance, which the orchestrator's operator starts again under a new generation. The race is narrow:
/// when other traffic changes the run's timing, the take-over moves to where it is reached again (at
/// 41.8 s since the sink tasks compare idle positions with the log start before committing; takeovers
/// from 41.65 to 41.975 s reach it).
#[test]
fn a_live_instance_fenced_by_a_late_registration_is_restarted() {
    let plan = vec![
        Scheduled {
            at: at(30_190),
            fault: Fault::CrashWorker {
                worker: 0,
                down: at(11_039),
            },
        },
        Scheduled {
            at: at(31_274),
            fault: Fault::MoveCoordinators { to: 1 },
        },
        take_over(41_800, 15_707),
        Scheduled {
            at: at(51_060),
            fault: Fault::Latency {
                max: at(119),
                duration: at(13_821),
            },
        },
        Scheduled {
            at: at(59_824),
            fault: Fault::MoveCoordinators { to: 2 },
        },
    ];
    let report = exactly_once(&["cooperative-sticky"], &["poll"])
        .run_exact(773, plan)
        .expect("the simulation runs");
    assert_eq!(
        report.coverage.get(&Event::FailedSourceRestarted),
        Some(&1),
        "the fault was reached: a live instance was fenced and restarted\n{}",
        report.trace.join("\n")
    );
    assert_passed(&report);
}

/// Retention deleted every record of the partitions worker 2 owned while it was cut off, after the last
/// record was written; when the partitions were assigned again the group's committed offset was before
/// the log start and no record came after it, so the new owner never moved its position and committed
/// the stale offset for the rest of the run (`retention` seed 83, before its drain check forgave
/// offsets before the log start, reported the run not drained). The task now goes on from the log
/// start, and commits it.
#[test]
fn a_sink_behind_the_log_start_commits_the_log_start() {
    let scenario = found_in("retention").with_scenario(|s| {
        s.assignors = &["cooperative-sticky"];
        s.sink_modes = &[sluice_sim::workload::SinkMode::Buffer];
        // The source has written its last record by about 54 s; the partitions move at about 58 s.
        s.active = Duration::from_secs(90);
    });
    let plan = vec![
        hold(48_000, 2, 30_000),
        delete(56_000, (0..8).collect(), 100),
    ];
    let report = scenario.run_exact(83, plan).expect("the simulation runs");
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
    assert!(
        report.records.deleted_unwritten > 0,
        "retention deleted records no sink task had written:\n{}",
        report.to_yaml()
    );
    assert_group_at_the_end(&report);
}

/// Worker 2 was cut off, and its partitions went to worker 0, whose tasks were assigned them at the
/// committed offsets; retention then deleted every record before their first fetch. The consumer moved
/// to the log start without a word and no record came after it, so no jump in the offsets showed the
/// loss, and the tasks, having put nothing of those partitions, had no position to compare with the
/// log start (`retention` seed 404, found by the oracle's `deleted-unreported`). Now a partition with
/// nothing put yet counts as at its committed offset, and the last commit before a stop compares every
/// position.
#[test]
fn a_partition_retention_empties_before_its_first_fetch_is_reported() {
    let scenario = found_in("retention").with_scenario(|s| {
        s.assignors = &["cooperative-sticky"];
        s.sink_modes = &[sluice_sim::workload::SinkMode::Buffer];
    });
    let plan = vec![
        hold(40_108, 2, 16_541),
        delete(52_765, (0..8).collect(), 100),
    ];
    let report = scenario.run_exact(404, plan).expect("the simulation runs");
    assert!(
        report.coverage.contains_key(&Event::RetentionSkipped),
        "the fault was reached: a consumer's position fell behind the log start\n{}",
        report.to_yaml()
    );
    assert!(
        report.records.deleted_unwritten > 0,
        "retention deleted records no sink task had written:\n{}",
        report.to_yaml()
    );
    assert_passed(&report);
}

/// Worker 2 stopped cleanly and the sink group began rebalancing; worker 1's consumer rejoined, and the
/// operator stopped the sink connector on worker 1 while that JoinGroup was on its way. The task's last
/// commit carried the old generation and reached the coordinator just after the join phase ended, which
/// answered ILLEGAL_GENERATION (the member was in the new generation, its commit from before it heard):
/// the runtime took that as a member thrown out and dropped the offsets, and worker 0, given the
/// partitions, delivered 70 flushed records again with no fault to explain it. Found by
/// `operator-calls` seed 569 (its first two faults; the rest came after). Now a commit refused for a
/// stale generation is retried in the new one, as one refused during the rebalance is.
#[test]
fn a_last_commit_of_the_generation_before_is_retried_in_the_new_one() {
    let scenario = found_in("operator-calls").with_scenario(|s| {
        s.assignors = &["cooperative-sticky"];
        s.sink_modes = &[sluice_sim::workload::SinkMode::WriteInPut];
    });
    let plan = vec![
        stop(7_269, 2, 10_670),
        Scheduled {
            at: at(9_253),
            fault: Fault::Operate {
                worker: 1,
                connector: Role::Sink,
                operation: Operation::Stop,
                duration: at(9_084),
            },
        },
    ];
    let report = scenario.run_exact(569, plan).expect("the simulation runs");
    assert_passed(&report);
    assert!(
        report.coverage.contains_key(&Event::CommitRefusedStale),
        "no commit was refused for its generation: {:?}",
        report.coverage
    );
    // The stopping task waited at its connector's gate for the new generation and committed there.
    let trace = report.trace.join("\n");
    let committed = trace
        .find("member_id: \"worker-1-1\", generation: 2,")
        .expect("worker 1's sink task did not commit in the new generation");
    let left = trace
        .find("Departed(\"worker-1-1\", Left)")
        .expect("worker 1's sink task did not leave the group");
    assert!(
        committed < left,
        "worker 1's sink task left before it committed"
    );
}

/// Worker 1 crashed holding partitions 4 and 5, and retention deleted every record while it was down. The
/// run ended as drained: the drain check took a group offset behind a log start that had reached the
/// end as caught up, so no sink task had yet taken the partitions over, found its position behind the
/// log start and reported the deleted records (`retention` seed 1241, the oracle's
/// `deleted-unreported`). Now the run drains only once the group's offsets reach each partition's end.
#[test]
fn a_run_drains_only_once_the_group_moved_past_what_retention_deleted() {
    let scenario = found_in("retention").with_scenario(|s| {
        s.assignors = &["range"];
        s.sink_modes = &[sluice_sim::workload::SinkMode::Buffer];
    });
    let plan = vec![
        hold(23_779, 1, 9_671),
        hold(23_853, 2, 16_609),
        Scheduled {
            at: at(49_495),
            fault: Fault::CrashWorker {
                worker: 1,
                down: at(11_683),
            },
        },
        delete(55_983, (0..8).collect(), 100),
        delete(57_366, vec![0, 1, 2], 74),
    ];
    let report = scenario.run_exact(1241, plan).expect("the simulation runs");
    assert_passed(&report);
    assert!(
        report.coverage.contains_key(&Event::CommitBeforeLogStart),
        "no sink task found the group's offset behind the log start\n{}",
        report.to_yaml()
    );
    assert_group_at_the_end(&report);
}
