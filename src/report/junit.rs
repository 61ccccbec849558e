//! JUnit XML for CI systems: one `<testcase>` per run, a `<failure>` when the gate
//! fails (message naming the counts and the first sample ids), an `<error>` when
//! the run could not be checked. Layout of the common Jenkins/Surefire schema.

use crate::result::{RunResult, Verdict};
use crate::verdict::{FailOn, counts_line, gate};

/// The scenario's name; a run of a `--repeat` series adds which one and its
/// seed, so the series' test cases stay apart.
fn case_name(r: &RunResult) -> String {
    match &r.repeat {
        Some(x) => format!(
            "{} (repeat {}/{}, seed {})",
            r.scenario.name, x.index, x.of, r.seed
        ),
        None => r.scenario.name.clone(),
    }
}

pub fn render(runs: &[RunResult], policy: FailOn) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut total_s) = (0, 0, 0.0);
    for r in runs {
        let (verdict, reasons) = gate(r, policy);
        total_s += r.workload.load_s;
        cases.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"dualwrite.{}.{}\" time=\"{:.3}\">\n",
            escape(&case_name(r)),
            escape(&r.target),
            escape(&r.pattern),
            r.workload.load_s
        ));
        let body = escape(&reasons.join("\n"));
        match verdict {
            Verdict::Pass => {}
            Verdict::Fail => {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"{}\" type=\"divergence\">{body}</failure>\n",
                    escape(&counts_line(r))
                ));
            }
            Verdict::Error => {
                errors += 1;
                let first = reasons.first().map(String::as_str).unwrap_or("run error");
                cases.push_str(&format!(
                    "      <error message=\"{}\" type=\"error\">{body}</error>\n",
                    escape(first)
                ));
            }
        }
        cases.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            escape(&format!(
                "run {} on {}: {:.1}/s of {}/s, p50 {} ms, p99 {} ms; {}",
                r.run_id,
                // moto reports no version: no dangling space before the colon.
                format!("{} {}", r.server.product, r.server.version).trim_end(),
                r.workload.achieved_tps,
                r.workload.target_tps,
                r.latency_ms.p50,
                r.latency_ms.p99,
                counts_line(r)
            ))
        ));
        // Warnings that a pass proves little (most operations indeterminate, a
        // store that never recovered) go where CI systems show a test's stderr.
        if !r.warnings.is_empty() {
            let lines: Vec<String> = r.warnings.iter().map(|w| format!("warning: {w}")).collect();
            cases.push_str(&format!(
                "      <system-err>{}</system-err>\n",
                escape(&lines.join("\n"))
            ));
        }
        cases.push_str("    </testcase>\n");
    }
    let head = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{total_s:.3}\"",
        runs.len()
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"dualwrite\" {head}>\n  <testsuite name=\"dualwrite\" {head} skipped=\"0\">\n{cases}  </testsuite>\n</testsuites>\n"
    )
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 forbids.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
