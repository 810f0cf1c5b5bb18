//! The output of an ABR algorithm.

/// The rendition chosen for the next chunk and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index into the [`crate::Ladder`], always ≤ the context's capability cap.
    pub rendition: usize,
    /// Which rule produced the choice.
    pub reason: Reason,
}

/// Why a rendition was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No usable report yet: fall back to a safe default.
    NoHistory,
    /// Rate-based: highest rung at or below the throughput estimate.
    ThroughputRule,
    /// Buffer below the reservoir (BBA): lowest rung.
    Reservoir,
    /// Buffer inside the cushion (BBA): rung mapped linearly from the buffer.
    Cushion,
    /// Buffer above reservoir + cushion (BBA): top rung.
    UpperReservoir,
    /// BOLA: rung maximising the Lyapunov drift-plus-penalty score.
    BolaScore,
    /// MPC: first step of the best plan over the horizon.
    MpcPlan,
    /// Production: the buffer is (estimated) too low to risk anything but the
    /// rung that can be fetched before the buffer runs dry.
    BufferSafety,
    /// The algorithm wanted a higher rung than the client's capability cap.
    CapabilityCap,
    /// Last chunk of the title already requested: nothing to decide.
    EndOfTitle,
}

impl Decision {
    /// Builds a decision, clamping the rung to `max_rendition` (and the ladder)
    /// and recording [`Reason::CapabilityCap`] when the clamp bites.
    pub fn capped(rendition: usize, reason: Reason, max_rendition: usize) -> Self {
        if rendition > max_rendition {
            Self {
                rendition: max_rendition,
                reason: Reason::CapabilityCap,
            }
        } else {
            Self { rendition, reason }
        }
    }
}
