//! The writer: what performs one logical operation (one order written to both
//! sides) for the driver — dualwrite's own pattern engine (`crate::pattern`) or,
//! for users testing their own service, that service. Either way it reports what
//! the caller was told, per the outcome rule (`crate::pattern::outcome`).

pub mod http;

use async_trait::async_trait;

use crate::history::OpReport;
use crate::order::Order;

#[async_trait]
pub trait Writer: Send + Sync {
    /// Never panics; errors are data in the report.
    async fn write(&self, order: &Order) -> OpReport;
}
