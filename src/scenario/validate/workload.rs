//! `[workload]`: rate, length, concurrency, orders, timeouts.

use std::time::Duration;

use super::super::error::Locator;
use super::super::raw::RawScenario;
use super::super::*;
use super::{Res, duration};

pub(super) fn workload(raw: &RawScenario, at: &Locator) -> Res<Workload> {
    let w = &raw.workload;
    if !w.rate.is_finite() || w.rate <= 0.0 || w.rate > 1_000_000.0 {
        return Err(at.error(
            "workload.rate",
            format!("rate {} is not a usable rate", w.rate),
            "give operations per second, greater than 0 and at most 1000000, e.g. rate = 100",
        ));
    }
    let limit = match (&w.duration, w.ops) {
        (Some(_), Some(_)) => {
            return Err(at.error(
                "workload.ops",
                "both `duration` and `ops` are set",
                "set one: duration = \"20s\" or ops = 2000",
            ));
        }
        (None, None) => {
            return Err(at.error(
                "workload",
                "neither `duration` nor `ops` is set",
                "add duration = \"20s\" or ops = 2000",
            ));
        }
        (Some(d), None) => {
            let d = duration(d, "workload.duration", at)?;
            if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
                return Err(at.error(
                    "workload.duration",
                    "must be above 0 and at most a week",
                    "e.g. duration = \"20s\"",
                ));
            }
            Limit::Duration(d)
        }
        (None, Some(n)) => {
            if n <= 0 || n > 1_000_000_000 {
                return Err(at.error(
                    "workload.ops",
                    format!("{n} operations is out of range"),
                    "use 1 to 1000000000",
                ));
            }
            Limit::Ops(n as u64)
        }
    };
    let concurrency = w.concurrency.unwrap_or(64);
    if !(1..=10_000).contains(&concurrency) {
        return Err(at.error(
            "workload.concurrency",
            format!("{concurrency} is out of range"),
            "use 1 to 10000",
        ));
    }
    let customers = w.customers.unwrap_or(1000);
    if customers < 1 {
        return Err(at.error(
            "workload.customers",
            "must be at least 1",
            "e.g. customers = 1000",
        ));
    }
    let payload_bytes = w.payload_bytes.unwrap_or(64);
    if !(0..=65_536).contains(&payload_bytes) {
        return Err(at.error(
            "workload.payload_bytes",
            format!("{payload_bytes} is out of range"),
            "use 0 to 65536",
        ));
    }
    let op_timeout = match &w.op_timeout {
        Some(t) => duration(t, "workload.op_timeout", at)?,
        None => Duration::from_secs(2),
    };
    if op_timeout < Duration::from_millis(10) || op_timeout > Duration::from_secs(300) {
        return Err(at.error(
            "workload.op_timeout",
            "must be between 10ms and 300s",
            "e.g. op_timeout = \"2s\"",
        ));
    }
    Ok(Workload {
        rate: w.rate,
        limit,
        concurrency: concurrency as usize,
        customers: customers as u64,
        payload_bytes: payload_bytes as usize,
        op_timeout,
    })
}
