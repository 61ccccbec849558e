//! The SDK-side fault source for DynamoDB: errors injected inside the AWS SDK of one
//! side, so a server that never throttles (moto) can still reproduce the classic
//! production failure — throttling on one table while the application moves on.
//!
//! Each side's clients (DynamoDB, and Streams on the relay side) carry one
//! [`FaultInterceptor`] sharing that side's [`SideFaults`]; `Store::set_fault` turns
//! an `sdk-error` window on and off there. Two moments:
//! - `when = "before"`: the request fails before it is sent (certainly not applied);
//! - `when = "after"`: the server applied the request and its answer is replaced by a
//!   400 (or 500 for `InternalServerError`) carrying the error's `__type`: an
//!   ambiguous write, the client hears an error for a write that landed.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::order::splitmix64;
use crate::scenario::InjectWhen;

/// The error a `when = "before"` injection raises. `classify` finds it in the error
/// chain and reports the DynamoDB error code it stands for, as a certain failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("injected {code} (sdk-error fault, request not sent)")]
pub struct InjectedError {
    pub code: String,
}

/// One active `sdk-error` window.
#[derive(Debug, Clone)]
struct Injection {
    /// Which `[[faults]]` entry turned it on (several may overlap on one side).
    fault: usize,
    code: String,
    rate: f64,
    when: InjectWhen,
}

/// The fault state of one side, shared by every client of that side.
#[derive(Debug, Default)]
pub struct SideFaults {
    active: Mutex<Vec<Injection>>,
    seed: u64,
    /// Requests seen while an injection was active (drives the seeded draw).
    draws: AtomicU64,
    /// Requests that got an injected error.
    pub injected: AtomicU64,
}

impl SideFaults {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            ..Self::default()
        })
    }

    pub fn activate(&self, fault: usize, code: &str, rate: f64, when: InjectWhen) {
        let mut active = self.active.lock().unwrap();
        active.retain(|i| i.fault != fault);
        active.push(Injection {
            fault,
            code: code.to_string(),
            rate,
            when,
        });
    }

    pub fn deactivate(&self, fault: usize) {
        self.active.lock().unwrap().retain(|i| i.fault != fault);
    }

    /// Whether this request gets the error: the latest window decides, drawing from
    /// a seeded sequence so a run is reproducible for a given request order.
    fn draw(&self, when: InjectWhen) -> Option<String> {
        let injection = self.active.lock().unwrap().last().cloned()?;
        if injection.when != when {
            return None;
        }
        let n = self.draws.fetch_add(1, Ordering::Relaxed) + 1;
        let draw = splitmix64(self.seed ^ n) as f64 / u64::MAX as f64;
        if draw < injection.rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Some(injection.code)
        } else {
            None
        }
    }
}

/// Installed on every SDK client of one side.
#[derive(Debug, Clone)]
pub struct FaultInterceptor {
    faults: Arc<SideFaults>,
}

impl FaultInterceptor {
    pub fn new(faults: Arc<SideFaults>) -> Self {
        Self { faults }
    }
}

/// Marks a replaced answer, so the classifier knows the server applied the request
/// whatever the status says (a real DynamoDB never sends it).
pub const INJECTED_AFTER_HEADER: &str = "x-dualwrite-injected-after";

/// The response DynamoDB sends for an error of this code, marked as injected.
fn error_response(code: &str) -> HttpResponse {
    // InternalServerError is a 500 on DynamoDB; the throughput errors are 400s.
    let status = if code == "InternalServerError" {
        500
    } else {
        400
    };
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by dualwrite (sdk-error fault, after the server applied the request)"}}"#
    );
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).expect("valid status"),
        SdkBody::from(body),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response.headers_mut().insert(INJECTED_AFTER_HEADER, "1");
    response
}

impl Intercept for FaultInterceptor {
    fn name(&self) -> &'static str {
        "dualwrite-sdk-error"
    }

    fn modify_before_transmit(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match self.faults.draw(InjectWhen::Before) {
            Some(code) => Err(Box::new(InjectedError { code })),
            None => Ok(()),
        }
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(code) = self.faults.draw(InjectWhen::After) {
            *context.response_mut() = error_response(&code);
        }
        Ok(())
    }
}

/// The injected error in an error's source chain, if there is one.
pub fn injected_in(err: &(dyn std::error::Error + 'static)) -> Option<InjectedError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(i) = e.downcast_ref::<InjectedError>() {
            return Some(i.clone());
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(faults: &SideFaults, when: InjectWhen, n: usize) -> Vec<bool> {
        (0..n).map(|_| faults.draw(when).is_some()).collect()
    }

    #[test]
    fn injects_only_inside_a_window_and_at_its_moment() {
        let f = SideFaults::new(1);
        assert!(f.draw(InjectWhen::Before).is_none(), "no window, no error");
        f.activate(0, "ThrottlingException", 1.0, InjectWhen::After);
        assert!(f.draw(InjectWhen::Before).is_none(), "other moment");
        assert_eq!(
            f.draw(InjectWhen::After).as_deref(),
            Some("ThrottlingException")
        );
        f.deactivate(0);
        assert!(f.draw(InjectWhen::After).is_none());
        assert_eq!(f.injected.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rate_is_a_fraction_of_requests_reproducible_from_the_seed() {
        let (a, b) = (SideFaults::new(42), SideFaults::new(42));
        for f in [&a, &b] {
            f.activate(3, "InternalServerError", 0.25, InjectWhen::Before);
        }
        let (da, db) = (
            draws(&a, InjectWhen::Before, 4000),
            draws(&b, InjectWhen::Before, 4000),
        );
        assert_eq!(da, db, "same seed, same draws");
        let hits = da.iter().filter(|h| **h).count();
        assert!((800..1200).contains(&hits), "{hits} of 4000 at rate 0.25");
    }

    #[test]
    fn the_replaced_answer_is_what_dynamodb_sends() {
        assert_eq!(error_response("InternalServerError").status().as_u16(), 500);
        let r = error_response("ProvisionedThroughputExceededException");
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(
            r.headers().get("content-type"),
            Some("application/x-amz-json-1.0")
        );
        let body = std::str::from_utf8(r.body().bytes().unwrap()).unwrap();
        assert!(body.contains("#ProvisionedThroughputExceededException\""));
        assert_eq!(r.headers().get(INJECTED_AFTER_HEADER), Some("1"));
    }
}
