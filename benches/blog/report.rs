//! Figures: what a process spent (from `/proc`), each run's results, their medians, and
//! the Markdown table.

use std::{fmt::Write as _, fs};

use serde::Serialize;
use serde_json::{Value, json};

use crate::load::{Measured, Workload};

/// A process whose CPU time and memory are read from `/proc`.
#[derive(Clone)]
pub(crate) struct Proc(String);

impl Proc {
    pub(crate) fn new(pid: u32) -> Self {
        Self(format!("/proc/{pid}"))
    }

    pub(crate) fn own() -> Self {
        Self("/proc/self".to_owned())
    }

    /// User and system CPU time so far, in clock ticks.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = fs::read_to_string(format!("{}/stat", self.0)).unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime and stime are
        // the 14th and 15th fields of the line.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        field(11) + field(12)
    }

    /// Starts measuring the peak resident memory again.
    pub(crate) fn reset_peak(&self) {
        _ = fs::write(format!("{}/clear_refs", self.0), "5");
    }

    /// The peak resident memory since the last reset, in MB.
    pub(crate) fn peak_rss_mb(&self) -> Option<f64> {
        let status = fs::read_to_string(format!("{}/status", self.0)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

/// Clock ticks per second, as `/proc` counts CPU time.
pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The machine the figures come from.
pub(crate) fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim())
        .to_owned();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0 / 1024.0).round());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    json!({ "cpu": model, "cores": cores, "memory_gib": memory_gib })
}

/// One operation's DynamoDB requests on each side.
#[derive(Serialize)]
pub(crate) struct Requests {
    pub(crate) operation: &'static str,
    pub(crate) floor: u64,
    pub(crate) server: u64,
}

/// One run of one system.
#[derive(Serialize)]
pub(crate) struct RunResult {
    round: usize,
    workload: Workload,
    connections: usize,
    system: &'static str,
    operations: usize,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    first_error: Option<String>,
    cpu_ms_per_op: f64,
    peak_rss_mb: Option<f64>,
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

impl RunResult {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        round: usize,
        workload: Workload,
        connections: usize,
        system: &'static str,
        mut measured: Measured,
        seconds: f64,
        cpu_ms: f64,
        peak_rss_mb: Option<f64>,
    ) -> Self {
        measured.latencies.sort_unstable();
        let operations = measured.latencies.len();
        Self {
            round,
            workload,
            connections,
            system,
            operations,
            throughput: operations as f64 / seconds,
            p50_ms: percentile(&measured.latencies, 50),
            p99_ms: percentile(&measured.latencies, 99),
            errors: measured.errors,
            first_error: measured.first_error,
            cpu_ms_per_op: cpu_ms / operations.max(1) as f64,
            peak_rss_mb,
        }
    }

    pub(crate) fn line(&self) -> String {
        format!(
            "round {} {:?} x{} {:6}: {:7.1} op/s  p50 {:6.2} ms  p99 {:6.2} ms  CPU {:5.2} ms/op  errors {}{}",
            self.round + 1,
            self.workload,
            self.connections,
            self.system,
            self.throughput,
            self.p50_ms,
            self.p99_ms,
            self.cpu_ms_per_op,
            self.errors,
            self.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
        )
    }
}

/// The medians of one system's runs of one workload at one number of connections.
#[derive(Clone, Copy, Default, Serialize)]
pub(crate) struct Medians {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_op: f64,
    errors: u64,
    peak_rss_mb: Option<f64>,
}

/// Both systems on one workload at one number of connections, and the ratios.
#[derive(Serialize)]
pub(crate) struct Row {
    workload: Workload,
    connections: usize,
    floor: Medians,
    server: Medians,
    throughput_ratio: f64,
    p99_ratio: f64,
    cpu_ratio: f64,
    p50_added_ms: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn medians(runs: &[&RunResult]) -> Medians {
    let of = |f: fn(&RunResult) -> f64| median(runs.iter().map(|r| f(r)).collect());
    Medians {
        throughput: of(|r| r.throughput),
        p50_ms: of(|r| r.p50_ms),
        p99_ms: of(|r| r.p99_ms),
        cpu_ms_per_op: of(|r| r.cpu_ms_per_op),
        errors: runs.iter().map(|r| r.errors).sum(),
        peak_rss_mb: runs.iter().filter_map(|r| r.peak_rss_mb).reduce(f64::max),
    }
}

/// One row per workload and number of connections, in the order they ran.
pub(crate) fn summarize(runs: &[RunResult], _requests: &[Requests]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for run in runs {
        if rows
            .iter()
            .any(|r| r.workload == run.workload && r.connections == run.connections)
        {
            continue;
        }
        let of = |system: &str| -> Vec<&RunResult> {
            runs.iter()
                .filter(|r| {
                    r.workload == run.workload
                        && r.connections == run.connections
                        && r.system == system
                })
                .collect()
        };
        let (floor, server) = (medians(&of("floor")), medians(&of("server")));
        rows.push(Row {
            workload: run.workload,
            connections: run.connections,
            floor,
            server,
            throughput_ratio: server.throughput / floor.throughput,
            p99_ratio: server.p99_ms / floor.p99_ms,
            cpu_ratio: server.cpu_ms_per_op / floor.cpu_ms_per_op,
            p50_added_ms: server.p50_ms - floor.p50_ms,
        });
    }
    rows
}

fn name(workload: Workload) -> &'static str {
    match workload {
        Workload::PostDetails => "PostDetails",
        Workload::UserFeed => "UserFeed",
        Workload::UsersPage => "UsersPage",
        Workload::Mix => "Mix 90/10",
    }
}

fn rss(mb: Option<f64>) -> String {
    mb.map_or("-".to_owned(), |mb| format!("{mb:.0}"))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

/// The Markdown report: the table, the request counts and the goals.
pub(crate) fn markdown(rows: &[Row], requests: &[Requests], machine: &Value, how: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Machine: {} cores ({}), {} GiB; DynamoDB Local, the load and the measured program share it. {how}.\n",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["memory_gib"]
    );
    out.push_str(
        "| operation | conns | req/s server / floor | ÷ | p50 ms server / floor | p99 ms server / floor | ÷ | CPU ms/req server / floor | ÷ | errors server / floor | peak RSS MB server / floor |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} / {:.0} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} / {:.2} | {:.2} | {} / {} | {} / {} |",
            name(r.workload),
            r.connections,
            r.server.throughput,
            r.floor.throughput,
            r.throughput_ratio,
            r.server.p50_ms,
            r.floor.p50_ms,
            r.server.p99_ms,
            r.floor.p99_ms,
            r.p99_ratio,
            r.server.cpu_ms_per_op,
            r.floor.cpu_ms_per_op,
            r.cpu_ratio,
            r.server.errors,
            r.floor.errors,
            rss(r.server.peak_rss_mb),
            rss(r.floor.peak_rss_mb),
        );
    }
    out.push_str("\n| operation | DynamoDB requests, server | floor |\n|---|---:|---:|\n");
    for r in requests {
        let _ = writeln!(out, "| {} | {} | {} |", r.operation, r.server, r.floor);
    }
    let busy: Vec<&Row> = rows.iter().filter(|r| r.connections > 1).collect();
    let single: Vec<&Row> = rows.iter().filter(|r| r.connections == 1).collect();
    let worst = |rows: &[&Row], f: fn(&Row) -> f64, max: bool| {
        rows.iter()
            .map(|r| f(r))
            .reduce(if max { f64::max } else { f64::min })
            .unwrap_or(f64::NAN)
    };
    let cpu = worst(&rows.iter().collect::<Vec<_>>(), |r| r.cpu_ratio, true);
    let throughput = worst(&busy, |r| r.throughput_ratio, false);
    let p99 = worst(&busy, |r| r.p99_ratio, true);
    let p50 = worst(&single, |r| r.p50_added_ms, true);
    let rss = rows
        .iter()
        .filter_map(|r| r.server.peak_rss_mb)
        .reduce(f64::max)
        .unwrap_or(f64::NAN);
    let same = requests.iter().all(|r| r.server == r.floor);
    let errors: u64 = rows.iter().map(|r| r.server.errors + r.floor.errors).sum();
    out.push_str("\n| goal | worst case measured | |\n|---|---:|---|\n");
    let mut goal = |what: &str, value: String, met: bool| {
        let _ = writeln!(out, "| {what} | {value} | {} |", verdict(met));
    };
    goal(
        "CPU per request ≤ 1.25 × the floor's",
        format!("{cpu:.2} ×"),
        cpu <= 1.25,
    );
    goal(
        "throughput ≥ 0.9 × the floor's (16 connections)",
        format!("{throughput:.2} ×"),
        throughput >= 0.9,
    );
    goal(
        "p99 ≤ 1.2 × the floor's (16 connections)",
        format!("{p99:.2} ×"),
        p99 <= 1.2,
    );
    goal(
        "p50 ≤ the floor's + 0.5 ms (1 connection)",
        format!("+{p50:.2} ms"),
        p50 <= 0.5,
    );
    goal("peak RSS ≤ 50 MB", format!("{rss:.0} MB"), rss <= 50.0);
    goal(
        "DynamoDB requests equal the floor's",
        if same {
            "equal".into()
        } else {
            "differ".into()
        },
        same,
    );
    goal("no errors", errors.to_string(), errors == 0);
    out
}
