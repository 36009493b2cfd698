//! The checker: every submission and its answer, the first terminal state of every job as read
//! from PostgreSQL, and the counts a scenario is judged by (lost, unexpected, written twice).

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What a scenario expects of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Succeed,
    /// Ends `failed` with exactly this error code.
    Fail(&'static str),
}

/// What the API answered to one `POST /v1/jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted(Uuid),
    /// An HTTP error status: nothing may have been accepted.
    Refused(u16),
    /// No HTTP answer (connection refused or reset, timeout): the job may or may not exist.
    Unanswered,
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub url: String,
    pub expect: Expect,
    pub answer: Answer,
}

/// One row of the jobs table, as the checker reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: Uuid,
    pub url: String,
    pub status: String,
    pub error_code: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub result_md5: Option<String>,
}

impl Row {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            status: self.status.clone(),
            error_code: self.error_code.clone(),
            finished_at: self.finished_at,
            result_md5: self.result_md5.clone(),
        }
    }
}

/// The parts of a terminal job that must never change once written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    status: String,
    error_code: Option<String>,
    finished_at: Option<DateTime<Utc>>,
    result_md5: Option<String>,
}

/// First terminal snapshot of every job, and the jobs whose terminal state changed afterwards.
#[derive(Debug, Default)]
pub struct Snapshots {
    first: HashMap<Uuid, Snapshot>,
    rewritten: HashMap<Uuid, String>,
}

impl Snapshots {
    /// Records the terminal rows of one poll; a terminal row that differs from the first
    /// terminal snapshot of its job (or a job that left its terminal state) is a rewrite.
    pub fn observe(&mut self, rows: &[Row]) {
        for row in rows {
            match self.first.get(&row.id) {
                None if row.is_terminal() => {
                    self.first.insert(row.id, row.snapshot());
                }
                None => {}
                Some(first) => {
                    let now = row.snapshot();
                    if *first != now && !self.rewritten.contains_key(&row.id) {
                        self.rewritten.insert(
                            row.id,
                            format!(
                                "job {} changed after it was terminal: {first:?} -> {now:?}",
                                row.id
                            ),
                        );
                    }
                }
            }
        }
    }

    pub fn rewritten(&self) -> usize {
        self.rewritten.len()
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub accepted: usize,
    pub refused: usize,
    pub no_answer: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub lost: usize,
    pub unexpected: usize,
    pub written_twice: usize,
    /// Rows that exist for a submission that got no answer: allowed, reported for information.
    pub created_without_answer: usize,
    pub max_attempts: i32,
    pub max_terminal_s: f64,
}

impl Counts {
    pub fn clean(&self) -> bool {
        self.accepted > 0 && self.lost == 0 && self.unexpected == 0 && self.written_twice == 0
    }
}

fn matches(expect: Expect, row: &Row) -> bool {
    match expect {
        Expect::Succeed => row.status == "succeeded",
        Expect::Fail(code) => row.status == "failed" && row.error_code.as_deref() == Some(code),
    }
}

/// Judges a run: the submissions, the final rows and the snapshots taken along the way.
/// Returns the counts and up to `max_notes` examples of what went wrong.
pub fn evaluate(
    submissions: &[Submission],
    rows: &[Row],
    snapshots: &Snapshots,
    max_notes: usize,
) -> (Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut notes = Vec::new();
    let mut note = |s: String| {
        if notes.len() < max_notes {
            notes.push(s);
        }
    };
    let by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let mut accepted_ids = HashSet::new();
    let mut unanswered_urls = HashSet::new();
    for sub in submissions {
        match sub.answer {
            Answer::Refused(_) => counts.refused += 1,
            Answer::Unanswered => {
                counts.no_answer += 1;
                unanswered_urls.insert(sub.url.as_str());
            }
            Answer::Accepted(id) => {
                counts.accepted += 1;
                accepted_ids.insert(id);
                let Some(row) = by_id.get(&id) else {
                    counts.lost += 1;
                    note(format!(
                        "accepted job {id} ({}) is not in the database",
                        sub.url
                    ));
                    continue;
                };
                if !row.is_terminal() {
                    counts.lost += 1;
                    note(format!(
                        "accepted job {id} ({}) is still {} after {} attempts",
                        sub.url, row.status, row.attempts
                    ));
                    continue;
                }
                match row.status.as_str() {
                    "succeeded" => counts.succeeded += 1,
                    "failed" => counts.failed += 1,
                    _ => counts.cancelled += 1,
                }
                counts.max_attempts = counts.max_attempts.max(row.attempts);
                if let Some(finished) = row.finished_at {
                    let secs = (finished - row.created_at).as_seconds_f64();
                    counts.max_terminal_s = counts.max_terminal_s.max(secs);
                }
                if row.url != sub.url {
                    counts.unexpected += 1;
                    note(format!(
                        "job {id} has url {} but was submitted for {}",
                        row.url, sub.url
                    ));
                } else if !matches(sub.expect, row) {
                    counts.unexpected += 1;
                    note(format!(
                        "job {id} ({}) expected {:?}, ended {} {:?} after {} attempts",
                        sub.url, sub.expect, row.status, row.error_code, row.attempts
                    ));
                }
            }
        }
    }
    for row in rows {
        if accepted_ids.contains(&row.id) {
            continue;
        }
        if unanswered_urls.contains(row.url.as_str()) {
            counts.created_without_answer += 1;
        } else {
            counts.unexpected += 1;
            note(format!(
                "job {} ({}, {}) exists but was never accepted",
                row.id, row.url, row.status
            ));
        }
    }
    counts.written_twice = snapshots.rewritten();
    for msg in snapshots.rewritten.values().take(max_notes) {
        note(msg.clone());
    }
    (counts, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, url: &str, status: &str, code: Option<&str>, md5: Option<&str>) -> Row {
        let created = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .expect("time")
            .to_utc();
        Row {
            id,
            url: url.into(),
            status: status.into(),
            error_code: code.map(Into::into),
            attempts: 1,
            created_at: created,
            finished_at: (status != "queued").then(|| created + chrono::TimeDelta::seconds(3)),
            result_md5: md5.map(Into::into),
        }
    }

    fn accepted(id: Uuid, url: &str, expect: Expect) -> Submission {
        Submission {
            url: url.into(),
            expect,
            answer: Answer::Accepted(id),
        }
    }

    #[test]
    fn a_run_where_every_accepted_job_finished_as_expected_is_clean() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let subs = [
            accepted(a, "u/a", Expect::Succeed),
            accepted(b, "u/b", Expect::Fail("poison")),
        ];
        let rows = [
            row(a, "u/a", "succeeded", None, Some("x")),
            row(b, "u/b", "failed", Some("poison"), None),
        ];
        let (counts, notes) = evaluate(&subs, &rows, &Snapshots::default(), 10);
        assert!(counts.clean(), "{counts:?} {notes:?}");
        assert_eq!(
            (counts.succeeded, counts.failed, counts.max_terminal_s),
            (1, 1, 3.0)
        );
    }

    #[test]
    fn an_accepted_job_missing_or_unfinished_is_lost() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let subs = [
            accepted(a, "u/a", Expect::Succeed),
            accepted(b, "u/b", Expect::Succeed),
        ];
        let rows = [row(b, "u/b", "queued", None, None)];
        let (counts, _) = evaluate(&subs, &rows, &Snapshots::default(), 10);
        assert_eq!(counts.lost, 2);
        assert!(!counts.clean());
    }

    #[test]
    fn a_row_nobody_was_told_about_is_unexpected_but_one_after_no_answer_is_not() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let subs = [
            Submission {
                url: "u/a".into(),
                expect: Expect::Succeed,
                answer: Answer::Refused(503),
            },
            Submission {
                url: "u/b".into(),
                expect: Expect::Succeed,
                answer: Answer::Unanswered,
            },
        ];
        let rows = [
            row(a, "u/a", "succeeded", None, Some("x")),
            row(b, "u/b", "succeeded", None, Some("y")),
        ];
        let (counts, _) = evaluate(&subs, &rows, &Snapshots::default(), 10);
        assert_eq!((counts.unexpected, counts.created_without_answer), (1, 1));
    }

    #[test]
    fn a_poison_job_that_failed_with_another_code_is_unexpected() {
        let a = Uuid::new_v4();
        let subs = [accepted(a, "u/a", Expect::Fail("poison"))];
        let rows = [row(a, "u/a", "failed", Some("internal"), None)];
        let (counts, notes) = evaluate(&subs, &rows, &Snapshots::default(), 10);
        assert_eq!(counts.unexpected, 1);
        assert!(notes[0].contains("internal"), "{notes:?}");
    }

    #[test]
    fn a_terminal_job_whose_result_changes_later_was_written_twice() {
        let a = Uuid::new_v4();
        let mut snapshots = Snapshots::default();
        snapshots.observe(&[row(a, "u/a", "running", None, None)]);
        snapshots.observe(&[row(a, "u/a", "succeeded", None, Some("first"))]);
        snapshots.observe(&[row(a, "u/a", "succeeded", None, Some("first"))]);
        assert_eq!(snapshots.rewritten(), 0);
        snapshots.observe(&[row(a, "u/a", "succeeded", None, Some("second"))]);
        assert_eq!(snapshots.rewritten(), 1);
    }

    #[test]
    fn a_terminal_job_that_becomes_queued_again_counts_as_rewritten() {
        let a = Uuid::new_v4();
        let mut snapshots = Snapshots::default();
        snapshots.observe(&[row(a, "u/a", "failed", Some("timeout"), None)]);
        snapshots.observe(&[row(a, "u/a", "queued", None, None)]);
        assert_eq!(snapshots.rewritten(), 1);
    }
}
