//! The readers' cost on the writers.

use super::*;

/// The readers' cost on the writers: `naive` with and without `[readers]`, A B B A,
/// at saturation (throughput) and at 30% of it (write p50 from the intended start).
/// The readers follow every order and read both sides of it at two delays: per
/// order, two writes and four point reads.
pub(super) async fn readers_cost(
    store: StoreKind,
    args: &BenchArgs,
    max_tps: f64,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let secs = if args.quick { 3 } else { 6 };
    let sat_ops: u64 = if args.quick { 600 } else { 2000 };
    let rate = (max_tps * 0.3 / 10.0).round().max(1.0) * 10.0;
    let readers = "[readers]\nconcurrency = 16\ndelays = [\"0ms\", \"100ms\"]\n";
    let (mut tps, mut p50) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..2 {
        for with in [round == 0, round != 0] {
            let extra = if with { readers } else { "" };
            let at_max = run_one(
                &(scenario_text(
                    store,
                    "naive",
                    100_000.0,
                    &format!("ops = {sat_ops}"),
                    16,
                    "",
                ) + extra),
                args,
            )
            .await?;
            let at_rate = run_one(
                &(scenario_text(
                    store,
                    "naive",
                    rate,
                    &format!("duration = \"{secs}s\""),
                    64,
                    "",
                ) + extra),
                args,
            )
            .await?;
            tps[usize::from(with)].push(at_max.workload.achieved_tps);
            p50[usize::from(with)].push(at_rate.latency_ms.p50);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (tps_ratio, p50_ratio) = (mean(&tps[1]) / mean(&tps[0]), mean(&p50[1]) / mean(&p50[0]));
    summary.add(format!(
        "SUMMARY readers' cost ({store} naive; readers of every order, both sides at 0ms and 100ms, A B B A): max throughput {:.0} ops/s with readers vs {:.0} without = {tps_ratio:.3}; write p50 at {rate}/s {:.2} ms vs {:.2} ms = {p50_ratio:.3}",
        mean(&tps[1]),
        mean(&tps[0]),
        mean(&p50[1]),
        mean(&p50[0]),
    ));
    Ok(())
}
