//! Production ABR (placeholder until tuned).

use super::{AbrAlgorithm, DecisionContext};
use crate::decision::Decision;

/// Name of the production algorithm on the command line and in reports.
pub const NAME: &str = "production";

/// Production ABR.
#[derive(Debug, Clone, Default)]
pub struct Production {
    inner: Option<super::mpc::RobustMpc>,
}

impl AbrAlgorithm for Production {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decide(&mut self, ctx: &DecisionContext<'_>) -> Decision {
        self.inner
            .get_or_insert_with(|| super::mpc::RobustMpc::new(super::mpc::ChunkIndexing::Fixed))
            .decide(ctx)
    }

    fn reset(&mut self) {
        self.inner = None;
    }
}
