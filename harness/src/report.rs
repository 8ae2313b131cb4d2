//! How flow results are shown: a line per step as it runs, a closing line, JSON, JUnit XML.

use crate::flows::{Event, FlowReport, Outcome, StepStatus};

/// One line for a finished step: mark, name, detail, time.
pub fn step_line(e: Event<'_>) -> Option<String> {
    match e {
        Event::Begin(name) if name == "KeysGenerated" => {
            Some(format!("  …  {name:<30} generating RSA-2048 key pairs on the card (seconds on a real card)"))
        }
        Event::Begin(_) => None,
        Event::End(s) => {
            let mark = match s.status {
                StepStatus::Ok => "ok ",
                StepStatus::Refused => "NO ",
                StepStatus::Failed => "ERR",
                StepStatus::Skipped => "-- ",
            };
            Some(format!("  {mark} {:<30} {}  ({} ms)", s.name, s.detail, s.millis))
        }
    }
}

/// The closing line.
pub fn outcome_line(r: &FlowReport) -> String {
    match &r.outcome {
        Outcome::Done { state, message } => format!("{}: {state} — {message}", r.flow),
        Outcome::Refused { reason, message } => format!("{}: refused, {reason} — {message}", r.flow),
        Outcome::Failed { message } => format!("{}: failed — {message}", r.flow),
        Outcome::DryRun { message } => format!("{}: dry run — {message}", r.flow),
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JUnit XML: one test suite per flow, one test case per step.
pub fn junit(reports: &[FlowReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let failures = r.steps.iter().filter(|s| matches!(s.status, StepStatus::Refused | StepStatus::Failed)).count();
        let time: f64 = r.steps.iter().map(|s| s.millis as f64 / 1000.0).sum();
        out.push_str(&format!(
            "  <testsuite name=\"firmalab.{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\">\n",
            xml(&r.flow),
            r.steps.len()
        ));
        for s in &r.steps {
            out.push_str(&format!(
                "    <testcase classname=\"firmalab.{}.{}\" name=\"{}\" time=\"{:.3}\">",
                xml(&r.flow),
                xml(&r.profile),
                xml(&s.name),
                s.millis as f64 / 1000.0
            ));
            match s.status {
                StepStatus::Ok => {}
                StepStatus::Skipped => out.push_str(&format!("<skipped message=\"{}\"/>", xml(&s.detail))),
                StepStatus::Refused | StepStatus::Failed => {
                    out.push_str(&format!("<failure message=\"{}\"/>", xml(&s.detail)))
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
