//! Run the checkers a workload needs and write the report.

use crate::checker::linearizable::{self, LinearizabilityOptions};
use crate::checker::{self, CheckResult, Validity};
use crate::history::{write_jsonl, write_nemesis_jsonl, History};
use crate::runner::RunOutput;
use crate::workload::Workload;
use std::path::Path;
use std::time::Duration;

pub struct Verdict {
    pub exit_code: i32,
    pub summary: String,
}

pub fn check_and_report(
    out: &Path,
    workload: Workload,
    run: &RunOutput,
    budget: Duration,
    meta: serde_json::Value,
) -> anyhow::Result<Verdict> {
    write_jsonl(out.join("history.jsonl"), &run.ops)?;
    write_nemesis_jsonl(out.join("nemesis.jsonl"), &run.events)?;
    let history = History::from_ops(&run.ops);
    let results = check_workload(workload, &history, &run.events, budget);
    crate::report::write_report(out, &run.ops, &run.events, &results, meta)?;
    let exit_code = match checker::overall(&results) {
        Validity::Valid => 0,
        Validity::Invalid => 1,
        Validity::Unknown => 2,
    };
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    Ok(Verdict { exit_code, summary })
}

/// The checkers of a workload, plus availability per fault (informational).
pub fn check_workload(
    workload: Workload,
    history: &History,
    events: &[crate::history::NemesisEvent],
    budget: Duration,
) -> Vec<CheckResult> {
    let lin = LinearizabilityOptions {
        budget,
        ..Default::default()
    };
    let main = match workload {
        Workload::Register => linearizable::check_register(history, &lin),
        Workload::CasRegister => linearizable::check_cas_register(history, &lin),
        Workload::Counter => checker::counter::check_counter(history),
        Workload::Append => checker::append::check_append(history),
        Workload::Set => checker::set::check_set(history),
        Workload::Catalog => checker::catalog::check_catalog(history),
        Workload::Index => checker::index::check_index(history),
    };
    vec![
        main,
        checker::availability::check_availability(history, events),
    ]
}
